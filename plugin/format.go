package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/template"
)

// The --format flag, shared by every command that prints a report, with
// docker's conventions (docker ls --format):
//
//	(empty) or table   the command's own table or text
//	json               the command's documented struct as JSON: a list is
//	                   written as JSON Lines (one object per item, as docker
//	                   writes --format json), a single report as one
//	                   indented document
//	{{...}}            a Go text/template, run once per item of a list (or
//	                   once for a report) and followed by a newline
//
// What a template or JSON sees is the struct the command documents in its
// --help, and those structs never hold a value: a template cannot print
// what is not there. A command adopts it with formatFlag and printFormatted.

// formatUsage is the --format paragraph of a command's usage: example is a
// template for it, fields the struct's fields as a template names them.
func formatUsage(example, fields string) string {
	return `  --format F     table (default), json, or a Go template such as '` + example + `'
                 over the fields ` + fields + `
                 (template functions: json, join, lower, upper, truncate)
`
}

// outFormat is a parsed --format value.
type outFormat struct {
	kind string // "table", "json" or "template"
	tmpl *template.Template
}

// formatFuncs are the template functions, docker's most used ones.
var formatFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := marshalJSON(v, false)
		return strings.TrimSuffix(string(b), "\n"), err
	},
	"join":  strings.Join,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"truncate": func(s string, n int) string {
		if n >= 0 && len(s) > n {
			return s[:n]
		}
		return s
	},
}

// parseFormat reads a --format value. A template that does not parse is
// a usage error; its text is the operator's own, so the error may quote it.
func parseFormat(s string) (outFormat, error) {
	switch strings.TrimSpace(s) {
	case "", "table":
		return outFormat{kind: "table"}, nil
	case "json":
		return outFormat{kind: "json"}, nil
	}
	if !strings.Contains(s, "{{") {
		// Not quoted: a value typed in the wrong place lands here too.
		return outFormat{}, fmt.Errorf("%w: --format wants table, json or a Go template such as '{{.Name}}' (not shown: it could be a value)", errUsage)
	}
	t, err := template.New("format").Funcs(formatFuncs).Option("missingkey=error").Parse(s)
	if err != nil {
		return outFormat{}, fmt.Errorf("%w: --format: %v", errUsage, strings.TrimPrefix(err.Error(), "template: format:"))
	}
	return outFormat{kind: "template", tmpl: t}, nil
}

// table reports whether the command prints its own table or text.
func (f outFormat) table() bool { return f.kind == "table" }

// print writes v in the chosen format; table prints the command's own
// form. v is a slice (one item per line, as docker does for lists) or a
// single report. Output is buffered per item, so a template that fails on
// an item prints nothing of that item.
func (f outFormat) print(w io.Writer, v any, table func(io.Writer) error) error {
	if f.kind == "table" {
		return table(w)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return f.printOne(w, v, true)
	}
	for i := range rv.Len() {
		if err := f.printOne(w, rv.Index(i).Interface(), false); err != nil {
			return err
		}
	}
	return nil
}

// item writes one item of a list the command streams (json or template).
func (f outFormat) item(w io.Writer, v any) error { return f.printOne(w, v, false) }

func (f outFormat) printOne(w io.Writer, v any, indent bool) error {
	var b []byte
	switch f.kind {
	case "json":
		var err error
		if b, err = marshalJSON(v, indent); err != nil {
			return err
		}
	default:
		var buf bytes.Buffer
		if err := f.tmpl.Execute(&buf, v); err != nil {
			return fmt.Errorf("--format: %w", templateError(err))
		}
		buf.WriteByte('\n')
		b = buf.Bytes()
	}
	_, err := w.Write(b)
	return err
}

// templateError keeps what the template package says about the template,
// without its "template: format:1:2: executing ..." prefix.
func templateError(err error) error {
	var ee template.ExecError
	if errors.As(err, &ee) {
		msg := ee.Err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "template:") {
			msg = msg[i+2:]
		}
		return errors.New(msg)
	}
	return err
}

// marshalJSON is encoding/json without HTML escaping ("<key>" stays
// readable), ending in a newline.
func marshalJSON(v any, indent bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// formatFlag adds --format to fs, and --json as its older spelling where
// a command had it (json true means --format json).
func formatFlag(fs *flag.FlagSet, withJSON bool) (format *string, asJSON *bool) {
	format = fs.String("format", "", "table, json or a Go template")
	asJSON = new(bool)
	if withJSON {
		fs.BoolVar(asJSON, "json", false, "same as --format json")
	}
	return format, asJSON
}

// resolveFormat parses the flags formatFlag added.
func resolveFormat(format string, asJSON bool) (outFormat, error) {
	if asJSON {
		if format != "" && format != "json" {
			return outFormat{}, fmt.Errorf("%w: --json and --format %s contradict each other: give one", errUsage, format)
		}
		format = "json"
	}
	return parseFormat(format)
}

// printFormatted is the one call for a command that has a --format string
// and a value to show: the value (a slice for a list, else one report),
// and table, the command's default output.
func printFormatted(w io.Writer, format string, v any, table func(io.Writer) error) error {
	f, err := parseFormat(format)
	if err != nil {
		return err
	}
	return f.print(w, v, table)
}
