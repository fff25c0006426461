package spec_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/spec"
)

func TestConfirmAndAnnounceSettings(t *testing.T) {
	head := `{"apiVersion":"upshift/v1","kind":"Upgrade","metadata":{"team":"a","environment":"b"},
		"spec":{"software":"x","from":"1","to":"2","targets":["t"],"artifact":{"url":"file:///a","digest":"md5:d41d8cd98f00b204e9800998ecf8427e"},`
	r, err := spec.Parse([]byte(head + `"confirm":{"roles":["dev","qa","ops","dba"],"timeout":"4h"},"announce":{"before":"24h","teams":["sales","support"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Spec.Confirm; c == nil || len(c.Roles) != 4 || c.Roles[3] != "dba" || c.Timeout.Duration != 4*time.Hour {
		t.Fatalf("confirm %+v", c)
	}
	if a := r.Spec.Announce; a == nil || a.Before.Duration != 24*time.Hour || len(a.Teams) != 2 {
		t.Fatalf("announce %+v", a)
	}
	// Every problem of one request is listed, each at its path.
	bad := `"confirm":{"roles":["DBA","qa","qa"],"timeout":"-1h"},"announce":{"before":"800h","teams":[]}}}`
	want := []struct{ path, says string }{
		{"spec.confirm.roles[0]", "lower-case"},
		{"spec.confirm.roles[2]", "listed twice"},
		{"spec.confirm.timeout", "between 0"},
		{"spec.announce.before", "between 0 and 720h"},
		{"spec.announce.teams", "at least one team"},
	}
	_, err = spec.Parse([]byte(head + bad))
	var verr *spec.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err %v", err)
	}
	for _, w := range want {
		found := false
		for _, p := range verr.Problems {
			found = found || p.Path == w.path && strings.Contains(p.Message, w.says)
		}
		if !found {
			t.Errorf("no problem at %q saying %q in %v", w.path, w.says, verr.Problems)
		}
	}
	for _, tc := range []struct{ body, path, says string }{
		{`"confirm":{}}}`, "spec.confirm.roles", "at least one role"},
		{`"confirm":{"roles":["dba"],"who":"x"}}}`, "spec.confirm.who", "unknown field"},
	} {
		_, err := spec.Parse([]byte(head + tc.body))
		if !errors.As(err, &verr) {
			t.Fatalf("%s: err %v", tc.body, err)
		}
		found := false
		for _, p := range verr.Problems {
			found = found || p.Path == tc.path && strings.Contains(p.Message, tc.says)
		}
		if !found {
			t.Errorf("%s: no problem at %q saying %q in %v", tc.body, tc.path, tc.says, verr.Problems)
		}
	}
}
