// Package gosource extracts the source text of named Go functions and methods,
// doc comment included, with go/parser. synod-viz embeds the text it extracts
// so that its code panel shows exactly the protocol code it runs.
package gosource

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
)

// Snippet is one function's source. It carries no line number, so that edits
// elsewhere in a file leave it unchanged.
type Snippet struct {
	Name  string `json:"name"`  // "Missile" or "AcceptorState.Prepare"
	Group string `json:"group"` // what the viewer shows it under
	File  string `json:"file"`  // slash-separated, relative to the module root
	Text  string `json:"text"`  // doc comment included
}

// Want names the functions to extract from one file.
type Want struct {
	File  string   // slash-separated, relative to the module root
	Group string   // copied into each Snippet
	Funcs []string // "Func" or "Type.Method" (pointer receivers too)
}

// Extract reads each file of wants under root and returns the snippets in the
// order of wants. A function it cannot find is an error.
func Extract(root string, wants []Want) ([]Snippet, error) {
	var out []Snippet
	for _, w := range wants {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(w.File)))
		if err != nil {
			return nil, fmt.Errorf("gosource: %w", err)
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, w.File, src, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("gosource: %w", err)
		}
		found := map[string]*ast.FuncDecl{}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				found[funcName(fd)] = fd
			}
		}
		for _, name := range w.Funcs {
			fd, ok := found[name]
			if !ok {
				return nil, fmt.Errorf("gosource: %s: no func %s", w.File, name)
			}
			start := fd.Pos()
			if fd.Doc != nil {
				start = fd.Doc.Pos()
			}
			from, to := fset.Position(start).Offset, fset.Position(fd.End()).Offset
			out = append(out, Snippet{
				Name: name, Group: w.Group, File: w.File, Text: string(src[from:to]),
			})
		}
	}
	return out, nil
}

// funcName is "Func" or "Type.Method".
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}
