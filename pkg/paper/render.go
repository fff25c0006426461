package paper

import (
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

// mdEscaper backslash-escapes what Markdown would read as markup, raw HTML
// included, so that a request's text is shown, never interpreted; a line
// break would end a table row or a list item, so it becomes a space.
var mdEscaper = strings.NewReplacer(`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`,
	`<`, `\<`, `|`, `\|`, `#`, `\#`, "\r\n", " ", "\n", " ", "\r", " ")

// mdEscape escapes s for Markdown; '>' matters only where a line starts
// (a quote), and every text here starts a paragraph, an item or a cell.
func mdEscape(s string) string {
	s = mdEscaper.Replace(s)
	if strings.HasPrefix(s, ">") {
		s = `\` + s
	}
	return s
}

var markdownTmpl = texttemplate.Must(texttemplate.New("md").Funcs(texttemplate.FuncMap{
	"md":     mdEscape,
	"hashes": func(n int) string { return strings.Repeat("#", n) },
}).Parse(`# {{md .Title}}
{{range .Sections}}
{{hashes .Level}} {{md .Heading}}
{{range .Blocks}}
{{- if .Para}}
{{md .Para}}
{{end}}
{{- if .List}}
{{range .List}}- {{md .}}
{{end}}{{end}}
{{- with .Table}}
|{{range .Head}} {{md .}} |{{end}}
|{{range .Head}} --- |{{end}}
{{range .Rows}}|{{range .}} {{md .}} |{{end}}
{{end}}{{end}}
{{- end}}{{end}}`))

var htmlTmpl = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #999; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{range .Sections}}{{if eq .Level 2}}<h2>{{.Heading}}</h2>
{{else if eq .Level 3}}<h3>{{.Heading}}</h3>
{{else if eq .Level 4}}<h4>{{.Heading}}</h4>
{{else}}<h5>{{.Heading}}</h5>
{{end}}{{range .Blocks}}{{if .Para}}<p>{{.Para}}</p>
{{end}}{{if .List}}<ul>
{{range .List}}<li>{{.}}</li>
{{end}}</ul>
{{end}}{{with .Table}}<table>
<thead><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{end}}{{end}}{{end}}</body>
</html>
`))
