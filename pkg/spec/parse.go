package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// MaxRequestSize bounds a request document.
const MaxRequestSize = 256 << 10

// ErrInvalid is matched (errors.Is) by every error Parse and Validate return
// about the request itself.
var ErrInvalid = errors.New("invalid request")

// Problem is one thing wrong with a request, at a field path such as
// "spec.targets[2]".
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	// Line and Column are where the field is in the request's source
	// (from 1), or the mapping a missing field belongs in; 0 when unknown
	// (a request built in code, or a problem with the whole document).
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError lists every problem found in a request.
type ValidationError struct {
	Problems []Problem `json:"problems"`
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid request: " + strings.Join(lines, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Parse reads a request from YAML or JSON, applies defaults and validates it.
// Unknown fields are problems too: a misspelt setting must not be ignored.
func Parse(b []byte) (Request, error) {
	if len(b) > MaxRequestSize {
		return Request{}, &ValidationError{[]Problem{{Message: fmt.Sprintf("request is %d bytes, limit %d", len(b), MaxRequestSize)}}}
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return Request{}, &ValidationError{[]Problem{{Message: "not YAML or JSON: " + err.Error()}}}
	}
	var raw any
	if err := json.Unmarshal(j, &raw); err != nil {
		return Request{}, &ValidationError{[]Problem{{Message: "not YAML or JSON: " + err.Error()}}}
	}
	if _, ok := raw.(map[string]any); !ok {
		return Request{}, &ValidationError{[]Problem{{Message: "a request is a mapping with apiVersion, kind, metadata and spec"}}}
	}
	// Check shapes ourselves, so that every problem is reported with its path;
	// the standard decoder stops at the first. What is wrong is removed, and
	// the rest decodes cleanly.
	var problems []Problem
	raw = check(raw, reflect.TypeFor[Request](), "", &problems)
	clean, err := json.Marshal(raw)
	if err != nil {
		return Request{}, fmt.Errorf("re-encode request: %w", err)
	}
	var r Request
	if err := json.Unmarshal(clean, &r); err != nil {
		problems = append(problems, Problem{Message: err.Error()})
	}
	r = r.WithDefaults()
	var verr *ValidationError
	if err := r.Validate(); errors.As(err, &verr) {
		problems = append(problems, verr.Problems...)
	}
	if len(problems) > 0 {
		locate(b, problems)
		return r, &ValidationError{problems}
	}
	return r, nil
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// check returns raw with every value that does not fit t removed, and adds a
// problem for each: unknown fields, wrong kinds, values our own types refuse.
// It returns nil when raw itself does not fit.
func check(raw any, t reflect.Type, path string, out *[]Problem) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	bad := func(want string) any {
		*out = append(*out, Problem{Path: path, Message: fmt.Sprintf("expected %s, got %s", want, jsonKind(raw))})
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshaler) {
		b, _ := json.Marshal(raw)
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(b); err != nil {
			*out = append(*out, Problem{Path: path, Message: err.Error()})
			return nil
		}
		return raw
	}
	if raw == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return bad("a mapping")
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				*out = append(*out, Problem{Path: joinPath(path, k), Message: "unknown field"})
				delete(m, k)
				continue
			}
			if v := check(m[k], ft, joinPath(path, k), out); v != nil {
				m[k] = v
			} else {
				delete(m, k)
			}
		}
		return m
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			return bad("a mapping")
		}
		for k, e := range m {
			if check(e, t.Elem(), joinPath(path, k), out) == nil {
				delete(m, k)
			}
		}
		return m
	case reflect.Slice:
		l, ok := raw.([]any)
		if !ok {
			return bad("a list")
		}
		kept := l[:0]
		for i, e := range l {
			if v := check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out); v != nil {
				kept = append(kept, v)
			}
		}
		return kept
	case reflect.String:
		if _, ok := raw.(string); !ok {
			return bad("a string")
		}
	case reflect.Int:
		if f, ok := raw.(float64); !ok || f != float64(int(f)) {
			return bad("a whole number")
		}
	case reflect.Bool:
		if _, ok := raw.(bool); !ok {
			return bad("true or false")
		}
	}
	return raw
}

func jsonKind(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("%q", v)
	default:
		return fmt.Sprint(v)
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
