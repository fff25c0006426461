package spec

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// locate sets each problem's line and column: where its field is in src,
// or, for a field that is missing, where the mapping that lacks it is.
// JSON is YAML, so JSON requests get positions too. A source the parser
// cannot read leaves the problems with their paths alone.
func locate(src []byte, problems []Problem) {
	// Positions are a help to the reader: a parser's panic on some input
	// (the coordinator parses what anyone may publish) costs them, not
	// the request's refusal.
	defer func() { _ = recover() }()
	f, err := parser.ParseBytes(src, 0)
	if err != nil || len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return
	}
	body := f.Docs[0].Body
	for i := range problems {
		if problems[i].Path == "" {
			continue
		}
		if line, col := position(body, segments(problems[i].Path)); line > 0 {
			problems[i].Line, problems[i].Column = line, col
		}
	}
}

// segments splits a problem's path, "spec.targets[1].name", into map keys
// and list indexes: "spec", "targets", 1, "name".
func segments(path string) []any {
	var out []any
	for part := range strings.SplitSeq(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			out = append(out, key)
		}
		for rest != "" {
			n, after, _ := strings.Cut(rest, "]")
			if i, err := strconv.Atoi(n); err == nil {
				out = append(out, i)
			}
			_, rest, _ = strings.Cut(after, "[")
		}
	}
	return out
}

// position finds the deepest node of path under n: a map entry by its
// key, a list item by itself.
func position(n ast.Node, path []any) (line, col int) {
	at := func(n ast.Node) {
		if t := n.GetToken(); t != nil && t.Position != nil {
			line, col = t.Position.Line, t.Position.Column
		}
	}
	for _, seg := range path {
		n = unwrap(n)
		var next ast.Node
		switch seg := seg.(type) {
		case string:
			for _, mv := range mapping(n) {
				if k, ok := mv.Key.(ast.ScalarNode); ok && fmt.Sprint(k.GetValue()) == seg {
					at(mv.Key)
					next = mv.Value
				}
			}
		case int:
			if s, ok := n.(*ast.SequenceNode); ok && seg < len(s.Values) {
				next = s.Values[seg]
				at(unwrap(next))
			}
		}
		if next == nil {
			return line, col
		}
		n = next
	}
	return line, col
}

// mapping is the entries of a mapping node (a single entry is its own
// node).
func mapping(n ast.Node) []*ast.MappingValueNode {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}
	}
	return nil
}

// unwrap looks through tags and anchors to the value they mark.
func unwrap(n ast.Node) ast.Node {
	for {
		switch t := n.(type) {
		case *ast.TagNode:
			n = t.Value
		case *ast.AnchorNode:
			n = t.Value
		default:
			return n
		}
	}
}
