// Package logging holds the slog setup protosynod's commands share: a text
// handler that writes each attribute once per line, however many layers add
// it (the command adds acceptor=a1 to its logger, and so does the package it
// passes that logger to).
package logging

import (
	"context"
	"io"
	"log/slog"
	"maps"
)

// NewTextHandler returns a slog.TextHandler on w that drops an attribute
// when one with the same key and value is already on the line (added by
// With, or earlier in the same call). Attributes inside groups are kept.
func NewTextHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	return Dedup(slog.NewTextHandler(w, opts))
}

// Dedup wraps h so that each top-level attribute appears once per record.
func Dedup(h slog.Handler) slog.Handler { return &dedup{h: h} }

type dedup struct {
	h       slog.Handler
	seen    map[string]slog.Value // top-level attributes added by WithAttrs
	grouped bool                  // after WithGroup, attributes are nested: keep them all
}

func (d *dedup) Enabled(ctx context.Context, l slog.Level) bool { return d.h.Enabled(ctx, l) }

func (d *dedup) WithAttrs(as []slog.Attr) slog.Handler {
	if d.grouped {
		return &dedup{h: d.h.WithAttrs(as), grouped: true}
	}
	seen := maps.Clone(d.seen)
	if seen == nil {
		seen = map[string]slog.Value{}
	}
	keep := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		if v, ok := seen[a.Key]; ok && v.Equal(a.Value) {
			continue
		}
		seen[a.Key] = a.Value
		keep = append(keep, a)
	}
	return &dedup{h: d.h.WithAttrs(keep), seen: seen}
}

func (d *dedup) WithGroup(name string) slog.Handler {
	return &dedup{h: d.h.WithGroup(name), seen: d.seen, grouped: true}
}

func (d *dedup) Handle(ctx context.Context, r slog.Record) error {
	if d.grouped {
		return d.h.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	var local map[string]slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if v, ok := d.seen[a.Key]; ok && v.Equal(a.Value) {
			return true
		}
		if v, ok := local[a.Key]; ok && v.Equal(a.Value) {
			return true
		}
		if local == nil {
			local = map[string]slog.Value{}
		}
		local[a.Key] = a.Value
		out.AddAttrs(a)
		return true
	})
	return d.h.Handle(ctx, out)
}
