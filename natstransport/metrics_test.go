package natstransport

import (
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/metrictest"
	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

func TestServiceMetrics(t *testing.T) {
	s := natstest.RunServer(t)
	reader := metrictest.New()
	svc, _ := serveOne(t, natstest.Connect(t, s), "a1", synod.NewMemoryStorage(), WithMeterProvider(reader.Provider))
	nc := natstest.Connect(t, s)
	tr := newTransport(t, nc)
	ctx := ctxTimeout(t, 10*time.Second)

	if _, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: "k", Ballot: b2}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.AcceptAt(ctx, "a1", synod.AcceptRequest{Key: "k", Ballot: b2, Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if r, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: "k", Ballot: b1}); err != nil || r.OK {
		t.Fatalf("prepare below the promise = %+v, %v; want a refusal", r, err)
	}
	prep, _ := svc.Subjects()
	if _, err := nc.RequestWithContext(ctx, prep, []byte("garbage!")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		attrs []string
		want  float64
	}{
		{"synod.acceptor.request.duration", []string{"acceptor", "a1", "op", "prepare", "outcome", "ok"}, 1},
		{"synod.acceptor.request.duration", []string{"acceptor", "a1", "op", "accept", "outcome", "ok"}, 1},
		{"synod.acceptor.request.duration", []string{"acceptor", "a1", "op", "prepare", "outcome", "refused"}, 1},
		{"synod.acceptor.refused", []string{"acceptor", "a1", "reason", "ballot"}, 1},
		{"synod.acceptor.malformed", []string{"acceptor", "a1", "op", "prepare"}, 1},
		{"synod.acceptor.queue.requests", []string{"acceptor", "a1"}, 0},
		{"synod.acceptor.queue.bytes", []string{"acceptor", "a1"}, 0},
	}
	for _, tt := range tests {
		got := reader.Get(t, tt.name, metrictest.Attrs(tt.attrs...)...)
		if got.N != tt.want || got.Points == 0 {
			t.Errorf("%s %v: got %+v, want %v", tt.name, tt.attrs, got, tt.want)
		}
	}
	if d := reader.Get(t, "synod.acceptor.request.duration"); d.Sum <= 0 || d.Sum > 10 {
		t.Errorf("request durations sum to %vs, want a plausible positive time", d.Sum)
	}
}
