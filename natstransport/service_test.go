package natstransport

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// serveOne serves acceptor id over store on a new in-process connection.
func serveOne(t *testing.T, nc *nats.Conn, id string, store synod.Storage, opts ...Option) (*Service, *synod.Acceptor) {
	t.Helper()
	acc := synod.NewAcceptor(id, store)
	svc, err := Serve(context.Background(), nc, testCluster, acc, opts...)
	if err != nil {
		t.Fatalf("serve %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", id, err)
		}
	})
	return svc, acc
}

func newTransport(t *testing.T, nc *nats.Conn, opts ...Option) *Transport {
	t.Helper()
	tr, err := NewTransport(nc, testCluster, opts...)
	if err != nil {
		t.Fatalf("new transport: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestServiceBadInput publishes raw bytes to the acceptor's subjects and checks
// that each gets the right error reply (or none), that the stored state does not
// change, and that the service keeps serving.
func TestServiceBadInput(t *testing.T) {
	s := natstest.RunServer(t)
	logs := &logBuffer{}
	svc, acc := serveOne(t, natstest.Connect(t, s), "a1", synod.NewMemoryStorage(), WithLogger(newTestLogger(logs)))
	nc := natstest.Connect(t, s)
	tr := newTransport(t, nc)
	ctx := ctxTimeout(t, 10*time.Second)

	// A promise and an accepted value to protect.
	if _, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: "k", Ballot: b1}); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if _, err := tr.AcceptAt(ctx, "a1", synod.AcceptRequest{Key: "k", Ballot: b1, Value: []byte("v1"), Next: b2}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	want, err := acc.State(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}

	prepSubj, accSubj := svc.Subjects()
	// Each bad frame targets key "k" where it can name a key at all, with a
	// ballot that would win, so that applying it would change the state.
	win := synod.Ballot{Counter: 100, Proposer: "evil"}
	acceptFrame := mustEncode(EncodeAcceptRequest(synod.AcceptRequest{Key: "k", Ballot: win, Value: []byte("evil")}))
	tests := []struct {
		name     string
		subject  string
		data     []byte
		wantCode string // "" means no reply expected
	}{
		{"garbage", prepSubj, []byte("garbage!"), CodeMalformed},
		{"empty", accSubj, nil, CodeMalformed},
		{"truncated accept", accSubj, acceptFrame[:len(acceptFrame)-3], CodeMalformed},
		{"trailing bytes", accSubj, append(append([]byte{}, acceptFrame...), 0xc0), CodeMalformed},
		{"huge str length", prepSubj, craft([]byte{0x93}, u(1), hdr32(0xdb, 1<<32-1), []byte("k")), CodeTooLarge},
		{"huge bin length", accSubj, craft([]byte{0x95}, u(1), str("k"), ballotBytes(100, "evil"), hdr32(0xc6, 1<<32-1)), CodeTooLarge},
		{"huge array length", accSubj, craft(hdr32(0xdd, 1<<32-1), u(1)), CodeMalformed},
		{"unknown version", prepSubj, craft([]byte{0x93}, u(9), str("k"), ballotBytes(100, "evil")), CodeVersion},
		{"oversize key", prepSubj, mustEncode(EncodePrepareRequest(synod.PrepareRequest{Key: strings.Repeat("k", MaxKeySize+1), Ballot: win})), CodeTooLarge},
		{"oversize value", accSubj, mustEncode(EncodeAcceptRequest(synod.AcceptRequest{Key: "k", Ballot: win, Value: make([]byte, DefaultMaxValue+1)})), CodeTooLarge},
		{"oversize frame", accSubj, make([]byte, DefaultLimits().maxMessage()+1), CodeTooLarge},
		{"zero ballot", prepSubj, mustEncode(EncodePrepareRequest(synod.PrepareRequest{Key: "k"})), CodeInvalidRequest},
		{"empty key", prepSubj, mustEncode(EncodePrepareRequest(synod.PrepareRequest{Ballot: win})), CodeInvalidRequest},
		{"next below ballot", accSubj, mustEncode(EncodeAcceptRequest(synod.AcceptRequest{Key: "k", Ballot: win, Next: b1})), CodeInvalidRequest},
		{"accept frame on prepare subject", prepSubj, acceptFrame, CodeMalformed},
		{"prepare frame on accept subject", accSubj, mustEncode(EncodePrepareRequest(synod.PrepareRequest{Key: "k", Ballot: win})), CodeMalformed},
		{"a reply frame as a request", prepSubj, mustEncode(EncodePrepareReply(synod.PrepareReply{From: "a1", Key: "k", Ballot: win, OK: true})), CodeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := nc.RequestWithContext(ctxTimeout(t, 5*time.Second), tt.subject, tt.data)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if got := m.Header.Get(micro.ErrorCodeHeader); got != tt.wantCode {
				t.Errorf("error code: got %q, want %q (%s)", got, tt.wantCode, m.Header.Get(micro.ErrorHeader))
			}
			body, err := DecodeErrorReply(m.Data, DefaultLimits())
			if err != nil || body.Code != tt.wantCode {
				t.Errorf("error body: got %+v, %v; want code %q", body, err, tt.wantCode)
			}
			if !errors.Is(replyError("a1", m), codeError(tt.wantCode)) {
				t.Errorf("reply maps to %v, want %v", replyError("a1", m), codeError(tt.wantCode))
			}
		})
	}
	// Without a reply subject, the frame is dropped; a winning accept without a
	// reply subject is not applied either.
	for _, data := range [][]byte{[]byte("garbage"), acceptFrame} {
		if err := nc.Publish(accSubj, data); err != nil {
			t.Fatal(err)
		}
	}
	// Unknown operation on the acceptor's subject tree: nobody listens.
	if _, err := nc.RequestWithContext(ctxTimeout(t, 5*time.Second), strings.TrimSuffix(accSubj, "accept")+"bogus", acceptFrame); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("bogus subject: got %v, want no responders", err)
	}
	// An accept on the same subscription is handled after those publishes.
	stale := synod.Ballot{Counter: 1, Proposer: "a"} // below the promise b2
	if rep, err := tr.AcceptAt(ctx, "a1", synod.AcceptRequest{Key: "k", Ballot: stale}); err != nil || rep.OK {
		t.Fatalf("stale accept after bad input: got %+v, %v; want a refusal", rep, err)
	}

	// Still serving, and the state did not move: a request with the ballot
	// just below the promise is still refused, the stored state is unchanged.
	rep, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: "k", Ballot: b1})
	if err != nil {
		t.Fatalf("prepare after bad input: %v", err)
	}
	if rep.OK || rep.Seen != b2 {
		t.Errorf("prepare after bad input: got OK=%v seen=%v, want a refusal citing %v", rep.OK, rep.Seen, b2)
	}
	got, err := acc.State(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state after bad input: got %+v, want %+v", got, want)
	}
	if got, want := svc.Stats().BadRequests, uint64(len(tests)+1); got != want {
		t.Errorf("bad requests counted: got %d, want %d", got, want)
	}
	// The first bad request is logged; the rest are counted and logged about
	// once a second (TestBadRequestLogsRateLimited).
	if n := strings.Count(logs.String(), "bad request"); n < 1 || n >= len(tests) {
		t.Errorf("bad requests logged: got %d lines for %d, want at least 1 and fewer", n, len(tests)+1)
	}
}

func TestErrorCodesMapBothWays(t *testing.T) {
	for _, ce := range codeErrors {
		wrapped := errors.Join(errors.New("context"), ce.err)
		if got := errorCode(wrapped); got != ce.code {
			t.Errorf("errorCode(%v): got %q, want %q", ce.err, got, ce.code)
		}
		remote := &RemoteError{Acceptor: "a1", Code: ce.code, Description: "d"}
		if !errors.Is(remote, ce.err) || !errors.Is(remote, ErrRemote) {
			t.Errorf("RemoteError code %s: does not match %v and ErrRemote", ce.code, ce.err)
		}
	}
	if got := errorCode(errors.New("disk on fire")); got != CodeStorage {
		t.Errorf("unknown error: got code %q, want %q", got, CodeStorage)
	}
	unknown := &RemoteError{Code: "999"}
	if !errors.Is(unknown, ErrRemote) || errors.Is(unknown, ErrStorage) {
		t.Errorf("unknown code matches wrongly: %v", unknown)
	}
}

// TestErrorsIsAcrossNATS checks that acceptor errors come back through NATS
// as errors matching the acceptor's sentinels.
func TestErrorsIsAcrossNATS(t *testing.T) {
	s := natstest.RunServer(t)
	serveOne(t, natstest.Connect(t, s), "bad", failingStorage{synod.NewMemoryStorage()})
	tr := newTransport(t, natstest.Connect(t, s))
	ctx := ctxTimeout(t, 10*time.Second)

	_, err := tr.AcceptAt(ctx, "bad", synod.AcceptRequest{Key: "k", Ballot: b1, Value: []byte("v")})
	var re *RemoteError
	if !errors.Is(err, ErrStorage) || !errors.Is(err, ErrRemote) || !errors.As(err, &re) || re.Code != CodeStorage || re.Acceptor != "bad" {
		t.Errorf("failing storage: got %#v, want a *RemoteError from bad matching ErrStorage", err)
	}
	if !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("failing storage: %q does not carry the cause", err)
	}

	nc := natstest.Connect(t, s)
	m, err := nc.RequestWithContext(ctx, "synod.c1.bad.prepare", mustEncode(EncodePrepareRequest(synod.PrepareRequest{Key: "k"})))
	if err != nil {
		t.Fatal(err)
	}
	if err := replyError("bad", m); !errors.Is(err, synod.ErrInvalidRequest) {
		t.Errorf("zero ballot: got %v, want synod.ErrInvalidRequest", err)
	}

	if _, err := tr.PrepareAt(ctx, "nobody", synod.PrepareRequest{Key: "k", Ballot: b1}); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("acceptor not served: got %v, want nats.ErrNoResponders", err)
	}
}

func TestServeRefusesSecondInstance(t *testing.T) {
	s := natstest.RunServer(t)
	svc, _ := serveOne(t, natstest.Connect(t, s), "a1", synod.NewMemoryStorage())

	start := time.Now()
	_, err := Serve(context.Background(), natstest.Connect(t, s), testCluster, synod.NewAcceptor("a1", synod.NewMemoryStorage()))
	if !errors.Is(err, ErrAlreadyServing) {
		t.Fatalf("second instance: got %v, want ErrAlreadyServing", err)
	}
	if !strings.Contains(err.Error(), svc.Info().ID) {
		t.Errorf("error %q does not name the running instance %s", err, svc.Info().ID)
	}
	if n := strings.Count(err.Error(), "already served"); n != 1 {
		t.Errorf("error %q says \"already served\" %d times, want once", err, n)
	}
	if err := Probe(context.Background(), natstest.Connect(t, s), testCluster, "a1"); !errors.Is(err, ErrAlreadyServing) {
		t.Errorf("Probe of a served acceptor: got %v, want ErrAlreadyServing", err)
	}
	if err := Probe(context.Background(), natstest.Connect(t, s), testCluster, "a7"); err != nil {
		t.Errorf("Probe of an acceptor nobody serves: %v", err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("refusal took %v; an answering instance should be detected at once", d)
	}

	// A silent subscriber on an acceptor's subject may be a paused instance.
	nc := natstest.Connect(t, s)
	if _, err := nc.Subscribe("synod.c1.a2.accept", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_, err = Serve(context.Background(), natstest.Connect(t, s), testCluster, synod.NewAcceptor("a2", synod.NewMemoryStorage()), WithProbeTimeout(50*time.Millisecond))
	if !errors.Is(err, ErrAlreadyServing) {
		t.Fatalf("silent subscriber: got %v, want ErrAlreadyServing", err)
	}

	// Another cluster or prefix is another acceptor.
	other, err := Serve(context.Background(), natstest.Connect(t, s), "c2", synod.NewAcceptor("a1", synod.NewMemoryStorage()))
	if err != nil {
		t.Fatalf("same ID in another cluster: %v", err)
	}
	if err := other.Stop(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Once the first instance stopped, a new one may start.
	if err := svc.Stop(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	serveOne(t, natstest.Connect(t, s), "a1", synod.NewMemoryStorage())
}

func TestServeValidates(t *testing.T) {
	s := natstest.RunServer(t)
	nc := natstest.Connect(t, s)
	tests := []struct {
		name    string
		cluster string
		id      string
		opts    []Option
	}{
		{"dot in ID", testCluster, "a.1", nil},
		{"wildcard cluster", "c*", "a1", nil},
		{"bad prefix", testCluster, "a1", []Option{WithPrefix("x.>")}},
		{"no workers", testCluster, "a1", []Option{WithWorkers(0)}},
		{"no queue", testCluster, "a1", []Option{WithQueue(0, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Serve(context.Background(), nc, tt.cluster, synod.NewAcceptor(tt.id, synod.NewMemoryStorage()), tt.opts...)
			if !errors.Is(err, synod.ErrInvalidConfig) {
				t.Errorf("got %v, want synod.ErrInvalidConfig", err)
			}
		})
	}
}

// TestServiceMicro checks what `nats micro info` and `nats micro stats` see.
func TestServiceMicro(t *testing.T) {
	s := natstest.RunServer(t)
	svc, _ := serveOne(t, natstest.Connect(t, s), "a1", synod.NewMemoryStorage(), WithPrefix("test.synod"))
	nc := natstest.Connect(t, s)
	tr := newTransport(t, nc, WithPrefix("test.synod"))
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: "k", Ballot: b1}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.ReadAt(ctx, "a1", synod.ReadRequest{Key: "k"}); err != nil {
		t.Fatal(err)
	}

	m, err := nc.RequestWithContext(ctx, "$SRV.INFO."+ServiceName, nil)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatal(err)
	}
	wantMeta := map[string]string{MetadataCluster: testCluster, MetadataAcceptor: "a1", MetadataPrefix: "test.synod", MetadataWire: "2"}
	if info.Name != ServiceName || info.ID != svc.Info().ID || !reflect.DeepEqual(info.Metadata, wantMeta) {
		t.Errorf("info: got %s %s %v, want %s %s %v", info.Name, info.ID, info.Metadata, ServiceName, svc.Info().ID, wantMeta)
	}
	var subjects []string
	for _, ep := range info.Endpoints {
		subjects = append(subjects, ep.Name+"="+ep.Subject+"/"+ep.QueueGroup)
	}
	if want := []string{"frame=test.synod.c1.a1.frame/", "prepare=test.synod.c1.a1.prepare/", "accept=test.synod.c1.a1.accept/", "inspect=test.synod.c1.a1.inspect/", "admin=test.synod.c1.a1.admin/"}; !reflect.DeepEqual(subjects, want) {
		t.Errorf("endpoints: got %v, want %v (no queue group)", subjects, want)
	}

	// micro counts a request only after its handler has returned, which is
	// after the reply went out, so the counts may trail the replies we have:
	// ask again until they catch up or the context ends.
	var stats micro.Stats
	for {
		m, err = nc.RequestWithContext(ctx, "$SRV.STATS."+ServiceName+"."+svc.Info().ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		stats = micro.Stats{}
		if err := json.Unmarshal(m.Data, &stats); err != nil {
			t.Fatal(err)
		}
		if len(stats.Endpoints) == 5 && stats.Endpoints[0].NumRequests >= 1 && stats.Endpoints[1].NumRequests >= 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stats: got %s, want 5 endpoints, 1 frame, 1 prepare", m.Data)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if stats.Endpoints[0].NumRequests != 1 || stats.Endpoints[1].NumRequests != 1 {
		t.Fatalf("stats: got %s, want 1 frame, 1 prepare", m.Data)
	}
	var data StatsData
	if err := json.Unmarshal(stats.Endpoints[0].Data, &data); err != nil || data.Handled != 2 {
		t.Errorf("stats data: got %s (%v), want handled 2", stats.Endpoints[0].Data, err)
	}
}

// startHeldAccept serves a1 over a storage that holds every write, sends an
// accept and waits until its write is held.
func startHeldAccept(t *testing.T) (*Service, *blockingStorage, *Transport, <-chan error) {
	s := natstest.RunServer(t)
	store := newBlockingStorage(func(string) bool { return true })
	svc, err := Serve(context.Background(), natstest.Connect(t, s), testCluster, synod.NewAcceptor("a1", store))
	if err != nil {
		t.Fatal(err)
	}
	tr := newTransport(t, natstest.Connect(t, s))
	replied := make(chan error, 1)
	go func() {
		rep, err := tr.AcceptAt(ctxTimeout(t, 10*time.Second), "a1", synod.AcceptRequest{Key: "k", Ballot: b1, Value: []byte("v")})
		if err == nil && !rep.OK {
			err = errors.New("accept refused")
		}
		replied <- err
	}()
	<-store.entered
	return svc, store, tr, replied
}

// TestServiceStopFinishesInFlight holds a write in storage, stops the service,
// and checks that Stop waits for the write, whose reply still arrives.
func TestServiceStopFinishesInFlight(t *testing.T) {
	svc, store, tr, replied := startHeldAccept(t)
	ctx := ctxTimeout(t, 10*time.Second)
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Stop(ctx) }()
	waitFor(t, "stopping", func() bool {
		svc.mu.Lock()
		defer svc.mu.Unlock()
		return svc.stopping
	})
	// No new requests are taken meanwhile.
	if _, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: "other", Ballot: b1}); !errors.Is(err, ErrStopping) && !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("request to a stopping service: got %v, want ErrStopping or no responders", err)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v while a write was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(store.release)
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := <-replied; err != nil {
		t.Fatalf("in-flight accept: %v", err)
	}
	st, err := store.Load(ctx, "k")
	if err != nil || string(st.Value) != "v" {
		t.Errorf("stored: got %+v, %v; want value v", st, err)
	}
}

// TestServiceStopDeadline checks that a Stop whose context ends first says so
// and cancels the write still running, which then fails without effect.
func TestServiceStopDeadline(t *testing.T) {
	svc, store, _, replied := startHeldAccept(t)
	if err := svc.Stop(ctxTimeout(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop with a short deadline: got %v, want DeadlineExceeded", err)
	}
	if err := <-replied; !errors.Is(err, ErrStorage) {
		t.Errorf("canceled write: got %v, want ErrStorage", err)
	}
	if err := svc.Stop(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if st, _ := store.Load(context.Background(), "k"); !st.Accepted.IsZero() {
		t.Errorf("canceled write was stored: %+v", st)
	}
}

// TestServiceSlowKeyDoesNotStallOthers holds one key's write and checks that
// other keys, on other workers, are still served.
func TestServiceSlowKeyDoesNotStallOthers(t *testing.T) {
	s := natstest.RunServer(t)
	store := newBlockingStorage(func(k string) bool { return k == "slow" })
	svc, _ := serveOne(t, natstest.Connect(t, s), "a1", store, WithWorkers(16))
	tr := newTransport(t, natstest.Connect(t, s))
	ctx := ctxTimeout(t, 10*time.Second)

	done := make(chan error, 1)
	go func() {
		_, err := tr.AcceptAt(ctx, "a1", synod.AcceptRequest{Key: "slow", Ballot: b1})
		done <- err
	}()
	<-store.entered
	served := 0
	for i := 0; served < 20; i++ {
		key := "k" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		if svc.worker(key) == svc.worker("slow") {
			continue
		}
		rep, err := tr.AcceptAt(ctxTimeout(t, 2*time.Second), "a1", synod.AcceptRequest{Key: key, Ballot: b1})
		if err != nil || !rep.OK {
			t.Fatalf("key %s while slow is held: got %+v, %v", key, rep, err)
		}
		served++
	}
	close(store.release)
	if err := <-done; err != nil {
		t.Fatalf("slow key: %v", err)
	}
}

func TestServiceOverloaded(t *testing.T) {
	s := natstest.RunServer(t)
	store := newBlockingStorage(func(k string) bool { return k == "first" })
	svc, _ := serveOne(t, natstest.Connect(t, s), "a1", store, WithWorkers(1), WithQueue(1, 1<<20))
	tr := newTransport(t, natstest.Connect(t, s))
	ctx := ctxTimeout(t, 10*time.Second)

	errs := make(chan error, 2)
	go func() {
		_, err := tr.AcceptAt(ctx, "a1", synod.AcceptRequest{Key: "first", Ballot: b1})
		errs <- err
	}()
	<-store.entered // the only worker is busy with "first"
	go func() {
		_, err := tr.AcceptAt(ctx, "a1", synod.AcceptRequest{Key: "second", Ballot: b1})
		errs <- err
	}()
	waitFor(t, "second request queued", func() bool { return len(svc.queues[0]) == 1 })
	_, err := tr.AcceptAt(ctx, "a1", synod.AcceptRequest{Key: "third", Ballot: b1})
	if !errors.Is(err, ErrOverloaded) {
		t.Errorf("third request: got %v, want ErrOverloaded", err)
	}
	close(store.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("queued request: %v", err)
		}
	}
	if st, _ := store.Load(ctx, "third"); !st.Accepted.IsZero() {
		t.Errorf("refused request was applied: %+v", st)
	}
	if got := svc.Stats().Overloaded; got != 1 {
		t.Errorf("overloaded count: got %d, want 1", got)
	}
}

// TestStatsDataIsServiceWide pins down what the package doc tells operators
// reading `nats micro stats synod-acceptor <instance>`: every endpoint's data
// block is the same service-wide StatsData, and `nats micro info` needs the
// instance ID to show a given acceptor.
func TestStatsDataIsServiceWide(t *testing.T) {
	s := natstest.RunServer(t)
	svc, _ := serveOne(t, natstest.Connect(t, s), "a1", synod.NewMemoryStorage())
	serveOne(t, natstest.Connect(t, s), "a2", synod.NewMemoryStorage())
	nc := natstest.Connect(t, s)
	tr := newTransport(t, nc)
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: "k", Ballot: b1}); err != nil {
		t.Fatal(err)
	}
	m, err := nc.RequestWithContext(ctx, "$SRV.STATS."+ServiceName+"."+svc.Info().ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(m.Data, &stats); err != nil {
		t.Fatal(err)
	}
	for _, ep := range stats.Endpoints {
		if string(ep.Data) != string(stats.Endpoints[0].Data) {
			t.Errorf("endpoint %s data %s differs from %s's %s", ep.Name, ep.Data, stats.Endpoints[0].Name, stats.Endpoints[0].Data)
		}
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nats micro info synod-acceptor <instance ID>", "service-wide"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("the package doc does not say %q", want)
		}
	}
}
