package notify

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// SecretRef says where a channel's secret is read from: a file or an
// environment variable of the notify process, never the routes file itself
// and never a request. Its value is never logged.
type SecretRef struct {
	File string `json:"file,omitempty"`
	Env  string `json:"env,omitempty"`
}

// ErrNoSecret is a secret that is not where its reference says.
var ErrNoSecret = errors.New("secret not found")

func (r SecretRef) set() bool { return r.File != "" || r.Env != "" }

func (r SecretRef) check(what string) error {
	switch {
	case r.File != "" && r.Env != "":
		return fmt.Errorf("%s: set file or env, not both", what)
	case !r.set():
		return fmt.Errorf("%s: set file or env", what)
	}
	return nil
}

// LookupEnv reads an environment variable; os.LookupEnv in a process.
type LookupEnv func(name string) (string, bool)

// resolve reads the secret. A file's trailing line break is not part of it.
func (r SecretRef) resolve(env LookupEnv) (string, error) {
	if r.File != "" {
		b, err := os.ReadFile(r.File)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrNoSecret, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	v, ok := env(r.Env)
	if !ok || v == "" {
		return "", fmt.Errorf("%w: environment variable %s is not set", ErrNoSecret, r.Env)
	}
	return v, nil
}
