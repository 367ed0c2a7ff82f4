package natstransport

import (
	"errors"
	"strings"
	"testing"
)

func TestSubjects(t *testing.T) {
	tests := []struct {
		name, prefix, cluster, id string
		wantPrepare, wantAccept   string
		wantErr                   bool
	}{
		{"default", DefaultPrefix, "c1", "a1", "synod.c1.a1.prepare", "synod.c1.a1.accept", false},
		{"dotted prefix", "prod.synod", "c1", "a-1_x", "prod.synod.c1.a-1_x.prepare", "prod.synod.c1.a-1_x.accept", false},
		{"unicode id", "synod", "c1", "ächter", "synod.c1.ächter.prepare", "synod.c1.ächter.accept", false},
		{"empty id", "synod", "c1", "", "", "", true},
		{"dot in id", "synod", "c1", "a.1", "", "", true},
		{"star in id", "synod", "c1", "a*", "", "", true},
		{"gt in cluster", "synod", ">", "a1", "", "", true},
		{"space in id", "synod", "c1", "a 1", "", "", true},
		{"tab in id", "synod", "c1", "a\t1", "", "", true},
		{"newline in cluster", "synod", "c\n1", "a1", "", "", true},
		{"nbsp in id", "synod", "c1", "a\u00a01", "", "", true},
		{"invalid utf8", "synod", "c1", "a\xff", "", "", true},
		{"long id", "synod", "c1", strings.Repeat("a", MaxIDSize+1), "", "", true},
		{"empty prefix", "", "c1", "a1", "", "", true},
		{"empty prefix token", "synod.", "c1", "a1", "", "", true},
		{"wildcard prefix", "synod.*", "c1", "a1", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, a, err := Subjects(tt.prefix, tt.cluster, tt.id)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidID) {
					t.Fatalf("got %q, %q, %v; want an error matching ErrInvalidID", p, a, err)
				}
				return
			}
			if err != nil || p != tt.wantPrepare || a != tt.wantAccept {
				t.Fatalf("got %q, %q, %v; want %q, %q", p, a, err, tt.wantPrepare, tt.wantAccept)
			}
		})
	}
}
