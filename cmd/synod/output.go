package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// output prints a command's result: as text or a table by default, as one
// indented JSON document with -json. Every command prints through it, so
// every command takes -json.
type output struct {
	w    io.Writer
	json bool
}

// emit prints v as JSON with -json, and otherwise calls text.
func (o *output) emit(v any, text func(w io.Writer) error) error {
	if o.json {
		enc := json.NewEncoder(o.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return text(o.w)
}

// table is a text table with a header row, aligned by tabwriter.
type table struct {
	header []string
	rows   [][]string
}

// add appends a row; each cell is formatted with %v.
func (t *table) add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, row)
}

// write prints the table.
func (t *table) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// jsonValue is a register value in JSON: Text when it is printable UTF-8,
// Base64 otherwise (encoding/json writes a []byte as base64); Empty for a
// register never written.
type jsonValue struct {
	Empty  bool   `json:"empty,omitempty"`
	Text   string `json:"text,omitempty"`
	Base64 []byte `json:"base64,omitempty"`
	Size   int    `json:"size"`
}

func newJSONValue(v []byte) jsonValue {
	switch {
	case v == nil:
		return jsonValue{Empty: true}
	case printable(v):
		return jsonValue{Text: string(v), Size: len(v)}
	}
	return jsonValue{Base64: v, Size: len(v)}
}

// format prints a value as text when it is printable UTF-8, quoted otherwise.
func format(v []byte) string {
	switch {
	case v == nil:
		return "(empty register)"
	case printable(v):
		return string(v)
	}
	return strconv.Quote(string(v))
}

func printable(v []byte) bool {
	return utf8.Valid(v) && !slices.ContainsFunc([]rune(string(v)), func(r rune) bool { return !strconv.IsPrint(r) })
}
