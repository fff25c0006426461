package targets_test

import (
	"os"
	"path/filepath"
	"strings"
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

// A declared database's DSN, and the password in it, are secrets too,
// whether the DSN comes from the environment or from a file.
func TestScrubRedactsDatabasePasswords(t *testing.T) {
	t.Setenv("UPSHIFT_TEST_SCRUB_DSN", "postgres://app:env-pa55word@db-1:5432/app")
	dir := t.TempDir()
	file := filepath.Join(dir, "dsn")
	if err := os.WriteFile(file, []byte("host=db-2 user=app password=file-pa55word dbname=app\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := targets.New(map[string]targets.Target{
		"web": {Root: "/srv/web", Databases: []targets.Database{
			{Name: "app", Kind: "postgres", DSNEnv: "UPSHIFT_TEST_SCRUB_DSN"},
			{Name: "audit", Kind: "postgres", DSNFile: file}}},
	}, "/")
	if err != nil {
		t.Fatal(err)
	}
	in := "connect postgres://app:env-pa55word@db-1:5432/app: no; retried with env-pa55word and file-pa55word"
	got := r.Scrub(in)
	for _, secret := range []string{"env-pa55word", "file-pa55word", "db-1:5432"} {
		if strings.Contains(got, secret) {
			t.Fatalf("%q left in %q", secret, got)
		}
	}
	if !strings.Contains(got, targets.Redacted) {
		t.Fatalf("nothing redacted: %q", got)
	}
}
