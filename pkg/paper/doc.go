// Package paper renders the paperwork of a change: the implementation plan
// an enterprise writes and approves before it touches production (the
// sections of the plan template upshift comes from, SEED.md), filled from a
// request, the targets' declarations, the environment's policy and,
// optionally, a dry run's measurements; and the report a change board reads
// afterwards, filled from the saga and its audit log. Both in English or in
// Chinese (the template's own headings), as Markdown or HTML.
//
// A document is built as a small tree of sections, paragraphs, lists and
// tables, then rendered by one text/template (Markdown) or one
// html/template (HTML): the content is decided once, the formats only lay
// it out, and everything that comes from a request or a report is escaped.
package paper

import (
	"errors"
	"fmt"
	"io"
)

// Lang is the language of a document.
type Lang string

// Languages.
const (
	English Lang = "en"
	Chinese Lang = "zh"
)

// Format is how a document is laid out.
type Format string

// Formats.
const (
	Markdown Format = "md"
	HTML     Format = "html"
)

// ErrUnsupported is returned for a language or format this package does
// not write.
var ErrUnsupported = errors.New("unsupported")

// ParseLang checks a language name.
func ParseLang(s string) (Lang, error) {
	switch l := Lang(s); l {
	case English, Chinese:
		return l, nil
	}
	return "", fmt.Errorf("%w language %q: en or zh", ErrUnsupported, s)
}

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Markdown, HTML:
		return f, nil
	}
	return "", fmt.Errorf("%w format %q: md or html", ErrUnsupported, s)
}

// Doc is a rendered-to-be document.
type Doc struct {
	Lang     Lang
	Title    string
	Sections []*Section
}

// Section is a heading and what follows it. Level 2 is a numbered chapter
// ("1 Introduction"), 3 and 4 its parts, 5 a step.
type Section struct {
	Level   int
	Heading string
	Blocks  []Block
}

// Block is one of a paragraph, a list or a table.
type Block struct {
	Para  string
	List  []string
	Table *Table
}

// Table has a header row and rows of as many cells.
type Table struct {
	Head []string
	Rows [][]string
}

func (s *Section) para(format string, args ...any) {
	s.Blocks = append(s.Blocks, Block{Para: fmt.Sprintf(format, args...)})
}

func (s *Section) list(items []string) {
	if len(items) > 0 {
		s.Blocks = append(s.Blocks, Block{List: items})
	}
}

func (s *Section) table(head []string, rows [][]string) {
	if len(rows) > 0 {
		s.Blocks = append(s.Blocks, Block{Table: &Table{Head: head, Rows: rows}})
	}
}

func (d *Doc) section(level int, heading string) *Section {
	s := &Section{Level: level, Heading: heading}
	d.Sections = append(d.Sections, s)
	return s
}

// Render writes the document in format f.
func (d Doc) Render(w io.Writer, f Format) error {
	switch f {
	case Markdown:
		return markdownTmpl.Execute(w, d)
	case HTML:
		return htmlTmpl.Execute(w, d)
	}
	return fmt.Errorf("%w format %q: md or html", ErrUnsupported, f)
}
