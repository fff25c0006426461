package kvstore_test

import (
	"context"
	"testing"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		_, js := natstest.Start(t)
		s, err := kvstore.Open(context.Background(), js, streams.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return storetest.Harness{Store: s, JS: js}
	})
}
