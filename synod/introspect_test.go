package synod

import "testing"

// TestIntrospection checks the read-only views against one two-phase round and
// the one-round-trip change after it.
func TestIntrospection(t *testing.T) {
	cfg := Config{Acceptors: []string{"a1", "a2", "a3"}}
	p, err := NewProposer("p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := p.Cached("k"); ok {
		t.Fatal("Cached before any round: got an entry")
	}
	var acc [3]AcceptorState
	pr := p.Begin("k", func([]byte) ([]byte, error) { return []byte("v"), nil })
	for i, id := range cfg.Acceptors[:2] {
		var rep PrepareReply
		acc[i], rep, _ = acc[i].Prepare(id, *pr.Request().Prepare)
		pr.OnPrepareReply(rep)
	}
	if yes, no := pr.Votes(); pr.Status() != StatusApply || yes != 2 || no != 0 {
		t.Fatalf("after two promises: status %v, Votes() = %d, %d; want Apply, 2, 0", pr.Status(), yes, no)
	}
	if b, v := pr.Latest(); !b.IsZero() || v != nil {
		t.Fatalf("Latest() = %v, %q; want ø, nil", b, v)
	}
	pr.Apply()
	req := *pr.Request().Accept
	for i, id := range cfg.Acceptors[:2] {
		var rep AcceptReply
		acc[i], rep, _ = acc[i].Accept(id, req)
		pr.OnAcceptReply(rep)
	}
	p.Complete(pr)
	next, v, ok := p.Cached("k")
	if !ok || next != req.Next || string(v) != "v" {
		t.Fatalf("Cached(k) = %v, %q, %v; want %v, \"v\", true", next, v, ok, req.Next)
	}
	pr = p.Begin("k", func(b []byte) ([]byte, error) { return append(b, 'w'), nil })
	if b, v := pr.Latest(); pr.Status() != StatusApply || !b.IsZero() || string(v) != "v" {
		t.Fatalf("one-round-trip Begin: status %v, Latest() = %v, %q; want Apply, ø, \"v\"", pr.Status(), b, v)
	}
	if _, _, ok := p.Cached("k"); ok {
		t.Fatal("Cached after Begin claimed the entry: still there")
	}
}
