package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Role is a right a token grants. The roles are independent: each grants
// its own routes and nothing else, so a token has exactly the roles its
// entry lists.
type Role string

const (
	// RoleRead grants every GET route.
	RoleRead Role = "read"
	// RoleApprove grants approve and reject.
	RoleApprove Role = "approve"
	// RoleOperate grants cancel: it stops a running saga and rolls it back.
	RoleOperate Role = "operate"
	// RoleConfirm grants confirm: its holder says a role's people are on
	// hand; it neither approves nor stops a saga.
	RoleConfirm Role = "confirm"
)

// Roles are the roles there are.
var Roles = []Role{RoleRead, RoleApprove, RoleOperate, RoleConfirm}

// Token is one caller of the API: a name, which is the actor of its
// decisions, the SHA-256 of its bearer token, and its roles. The token
// itself is not kept: whoever reads the file or the process cannot use it.
type Token struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Roles  []Role `json:"roles"`
}

// Has says whether the token grants role.
func (t Token) Has(role Role) bool { return slices.Contains(t.Roles, role) }

// TokensFile is the file of --api-tokens.
type TokensFile struct {
	Tokens []Token `json:"tokens"`
}

// ErrTokens is returned for a tokens file that cannot be used.
var ErrTokens = errors.New("api tokens")

// nameRE is what a token's name may be: it is an actor, shown in sagas,
// events and notices.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// LoadTokens reads and checks a tokens file (YAML or JSON).
func LoadTokens(path string) ([]Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokens, err)
	}
	var f TokensFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTokens, path, err)
	}
	if err := CheckTokens(f.Tokens); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f.Tokens, nil
}

// CheckTokens refuses a list with no token, a name or hash given twice, a
// hash that is not 64 hexadecimal digits, a token without roles or with
// one that does not exist.
func CheckTokens(ts []Token) error {
	if len(ts) == 0 {
		return fmt.Errorf("%w: no token", ErrTokens)
	}
	var problems []string
	names, hashes := map[string]bool{}, map[string]bool{}
	for i, t := range ts {
		what := fmt.Sprintf("token %d (%s)", i+1, t.Name)
		if !nameRE.MatchString(t.Name) {
			problems = append(problems, what+": name must be 1 to 64 letters, digits, '.', '_', '@' or '-'")
		}
		if names[t.Name] {
			problems = append(problems, what+": name given twice")
		}
		names[t.Name] = true
		h := strings.ToLower(t.SHA256)
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			problems = append(problems, what+": sha256 must be the 64 hexadecimal digits of the token's SHA-256 (sha256sum)")
		} else if hashes[h] {
			problems = append(problems, what+": the same token as another")
		}
		hashes[h] = true
		if len(t.Roles) == 0 {
			problems = append(problems, what+": no roles; give read, approve or operate")
		}
		for _, r := range t.Roles {
			if !slices.Contains(Roles, r) {
				problems = append(problems, fmt.Sprintf("%s: no role %q; the roles are read, approve and operate", what, r))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrTokens, strings.Join(problems, "; "))
	}
	return nil
}

// caller is who a request comes from.
type caller struct {
	// name is the token's name; empty for the single token of
	// Config.Token, whose caller names itself in the body.
	name  string
	roles []Role
}

// known are the tokens an API accepts, by hash.
type known struct {
	hashes  [][sha256.Size]byte
	callers []caller
}

func newKnown(cfg Config) known {
	var k known
	add := func(hash []byte, c caller) {
		var h [sha256.Size]byte
		if copy(h[:], hash) == sha256.Size {
			k.hashes, k.callers = append(k.hashes, h), append(k.callers, c)
		}
	}
	if cfg.Token != "" {
		h := sha256.Sum256([]byte(cfg.Token))
		add(h[:], caller{roles: Roles})
	}
	for _, t := range cfg.Tokens {
		// LoadTokens checked the hash; one that is not is never matched.
		h, _ := hex.DecodeString(strings.ToLower(t.SHA256))
		add(h, caller{name: t.Name, roles: slices.Clone(t.Roles)})
	}
	return k
}

// find returns the caller whose token is given. Every hash is compared, in
// constant time, so the timing says neither which token matched nor how
// much of one.
func (k known) find(given string) (caller, bool) {
	got := sha256.Sum256([]byte(given))
	found := -1
	for i, h := range k.hashes {
		if subtle.ConstantTimeCompare(h[:], got[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return caller{}, false
	}
	return k.callers[found], true
}
