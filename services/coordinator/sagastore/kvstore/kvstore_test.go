package kvstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/streams"
	"github.com/upshift/upshift/services/coordinator/sagastore/kvstore"
	"github.com/upshift/upshift/services/coordinator/sagastore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, harness)
}

func harness(t testing.TB) storetest.Harness {
	_, js := natstest.Start(t)
	s, err := kvstore.Open(context.Background(), js, streams.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return storetest.Harness{Store: s, JS: js}
}

func BenchmarkTransition(b *testing.B) {
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) { storetest.BenchTransition(b, n, harness) })
	}
}
