package targets_test

import (
	"testing"

	"github.com/upshift/upshift/pkg/targets"
)

func TestScrubRedactsEverySecretOfEveryTarget(t *testing.T) {
	t.Parallel()
	r, err := targets.New(map[string]targets.Target{
		"web": {Root: "/srv/web", Env: map[string]targets.Secret{"DB_PASSWORD": "hunter22", "TOKEN": "hunter22-and-more", "DEBUG": "1"}},
		"db":  {Root: "/srv/db", Env: map[string]targets.Secret{"PGPASSWORD": "pg-s3cret"}},
	}, "/")
	if err != nil {
		t.Fatal(err)
	}
	web, _ := r.Get("web")
	cases := []struct{ name, in, web, all string }{
		{"none", "all is well", "all is well", "all is well"},
		{"one", "login with hunter22 failed", "login with [redacted] failed", "login with [redacted] failed"},
		{"the longer first", "token hunter22-and-more", "token [redacted]", "token [redacted]"},
		{"another target's", "pg-s3cret\npg-s3cret", "pg-s3cret\npg-s3cret", "[redacted]\n[redacted]"},
		{"too short to be one", "DEBUG=1", "DEBUG=1", "DEBUG=1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := web.Scrub(tc.in); got != tc.web {
				t.Errorf("target: %q, want %q", got, tc.web)
			}
			if got := r.Scrub(tc.in); got != tc.all {
				t.Errorf("registry: %q, want %q", got, tc.all)
			}
		})
	}
}
