package viz

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// ExportFormat names the JSON format of an exported session.
const ExportFormat = "synod-viz/1"

// Export is a session as JSON: its seed and choices, and the scripted choices
// not yet stepped through. Importing it replays the choices.
type Export struct {
	Format   string   `json:"format"`
	Seed     uint64   `json:"seed"`
	Scenario string   `json:"scenario,omitempty"`
	Choices  []Choice `json:"choices"`
	Script   []Choice `json:"script,omitempty"`
}

// Request is what the page posts to change its session.
type Request struct {
	// Op is one of: choice (apply Choice), step (next scripted or auto
	// choice), quiesce (run to quiescence), undo, reset (new session of Seed),
	// load (Scenario, with Seed), import (Import).
	Op       string  `json:"op"`
	Choice   *Choice `json:"choice,omitempty"`
	Seed     uint64  `json:"seed,omitempty"`
	Scenario string  `json:"scenario,omitempty"`
	Import   *Export `json:"import,omitempty"`
}

// PageView is a session's View with what the page needs around it.
type PageView struct {
	View
	Scenario *Scenario `json:"scenarioInfo,omitempty"`
	Message  string    `json:"message,omitempty"` // the outcome of the last request
}

// Server serves the visualizer page, one deterministic session per page with
// updates over Server-Sent Events, and the live mode.
type Server struct {
	mux    *http.ServeMux
	live   LiveSource
	logger *slog.Logger

	mu    sync.Mutex
	pages map[string]*page
}

type page struct {
	mu       sync.Mutex
	sess     *Session
	scenario string
	message  string
	used     time.Time
	subs     map[chan []byte]bool
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithLive sets where live mode reads a running cluster (default: live mode
// says it is not configured).
func WithLive(l LiveSource) ServerOption { return func(s *Server) { s.live = l } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) ServerOption { return func(s *Server) { s.logger = l } }

// NewServer returns the visualizer's HTTP handler.
func NewServer(opts ...ServerOption) *Server {
	s := &Server{mux: http.NewServeMux(), pages: map[string]*page{}, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // embedded at build time
	}
	files := http.FileServerFS(sub)
	s.mux.Handle("GET /", files)
	s.mux.HandleFunc("GET /api/source", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, Sources()) })
	s.mux.HandleFunc("GET /api/scenarios", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, Scenarios) })
	s.mux.HandleFunc("POST /api/sessions", s.create)
	s.mux.HandleFunc("GET /api/sessions/{id}/events", s.events)
	s.mux.HandleFunc("POST /api/sessions/{id}/do", s.do)
	s.mux.HandleFunc("GET /api/sessions/{id}/export", s.export)
	s.mux.HandleFunc("GET /api/live", s.liveEvents)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// idleTimeout is how long a page's session outlives its last use.
const idleTimeout = time.Hour

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Seed uint64 `json:"seed"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	if req.Seed == 0 {
		req.Seed = 1
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	now := time.Now()
	s.mu.Lock()
	for k, p := range s.pages {
		p.mu.Lock()
		if now.Sub(p.used) > idleTimeout && len(p.subs) == 0 {
			delete(s.pages, k)
		}
		p.mu.Unlock()
	}
	s.pages[id] = &page{sess: New(req.Seed), used: now, subs: map[chan []byte]bool{}}
	s.mu.Unlock()
	writeJSON(w, map[string]string{"id": id})
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) *page {
	s.mu.Lock()
	p := s.pages[r.PathValue("id")]
	s.mu.Unlock()
	if p == nil {
		httpError(w, http.StatusNotFound, errors.New("no such session (reload the page)"))
	}
	return p
}

// view renders p; p.mu is held.
func (p *page) view() []byte {
	pv := PageView{View: p.sess.View(), Message: p.message}
	if sc, ok := ScenarioByName(p.scenario); ok {
		pv.Scenario = &sc
		pv.View.Scenario = sc.Name
	}
	b, err := json.Marshal(pv)
	if err != nil {
		panic(err) // plain data
	}
	return b
}

// publish sends p's view to every subscriber; p.mu is held.
func (p *page) publish() {
	v := p.view()
	for ch := range p.subs {
		select {
		case ch <- v:
		default: // a slow page gets the next view instead
			select {
			case <-ch:
			default:
			}
			ch <- v
		}
	}
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	p := s.page(w, r)
	if p == nil {
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	ch := make(chan []byte, 1)
	p.mu.Lock()
	p.subs[ch] = true
	ch <- p.view()
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.subs, ch)
		p.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case v := <-ch:
			if _, err := fmt.Fprintf(w, "event: view\ndata: %s\n\n", v); err != nil {
				return
			}
			fl.Flush()
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// maxQuiesce bounds one run to quiescence.
const maxQuiesce = 2000

func (s *Server) do(w http.ResponseWriter, r *http.Request) {
	p := s.page(w, r)
	if p == nil {
		return
	}
	var req Request
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used = time.Now()
	msg, err := p.apply(req)
	if err != nil {
		p.message = "refused: " + err.Error()
		p.publish()
		httpError(w, http.StatusConflict, err)
		return
	}
	p.message = msg
	p.publish()
	writeJSON(w, map[string]any{"ok": true, "message": msg, "step": len(p.sess.choices)})
}

// apply carries out req; p.mu is held.
func (p *page) apply(req Request) (string, error) {
	switch req.Op {
	case "choice":
		if req.Choice == nil {
			return "", errors.New("choice: missing choice")
		}
		left, err := p.sess.Choose(*req.Choice)
		if left {
			return "you left the scenario's script: free play from here", err
		}
		return "", err
	case "step":
		ok, err := p.sess.Step()
		if err == nil && !ok {
			return "nothing left to do: the session is quiet", nil
		}
		return "", err
	case "quiesce":
		n, err := p.sess.Quiesce(maxQuiesce)
		if err != nil {
			return "", err
		}
		if !p.sess.Quiet() {
			return fmt.Sprintf("stopped after %d steps without reaching quiescence (is a quorum down?)", n), nil
		}
		return fmt.Sprintf("quiet after %d steps", n), nil
	case "undo":
		ns, err := p.sess.Undo()
		if err != nil {
			return "", err
		}
		p.sess = ns
		return fmt.Sprintf("undone: replayed %d choices from seed %d", len(ns.choices), ns.seed), nil
	case "reset":
		seed := req.Seed
		if seed == 0 {
			seed = p.sess.seed
		}
		p.sess, p.scenario = New(seed), ""
		return fmt.Sprintf("new session, seed %d", seed), nil
	case "load":
		sc, ok := ScenarioByName(req.Scenario)
		if !ok {
			return "", fmt.Errorf("no scenario %q", req.Scenario)
		}
		seed := req.Seed
		if seed == 0 {
			seed = p.sess.seed
		}
		ns, err := sc.Load(seed)
		if err != nil {
			return "", err
		}
		p.sess, p.scenario = ns, sc.Name
		return fmt.Sprintf("scenario %q loaded: %d steps to go", sc.Name, len(ns.script)), nil
	case "import":
		e := req.Import
		if e == nil || e.Format != ExportFormat {
			return "", fmt.Errorf("import: not a %s export", ExportFormat)
		}
		if len(e.Choices)+len(e.Script) > 100_000 {
			return "", errors.New("import: too many choices")
		}
		ns, err := Replay(e.Seed, e.Choices, e.Script)
		if err != nil {
			return "", fmt.Errorf("import: %w", err)
		}
		p.sess, p.scenario = ns, e.Scenario
		return fmt.Sprintf("imported: replayed %d choices from seed %d", len(e.Choices), e.Seed), nil
	}
	return "", fmt.Errorf("unknown op %q", req.Op)
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	p := s.page(w, r)
	if p == nil {
		return
	}
	p.mu.Lock()
	e := Export{Format: ExportFormat, Seed: p.sess.seed, Scenario: p.scenario, Choices: p.sess.Choices(), Script: p.sess.Script()}
	p.mu.Unlock()
	if e.Choices == nil {
		e.Choices = []Choice{}
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="synod-viz-%d-%d.json"`, e.Seed, len(e.Choices)))
	writeJSON(w, e)
}

// liveEvents streams snapshots of a running cluster every liveInterval.
func (s *Server) liveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	cluster := r.URL.Query().Get("cluster")
	var keys []string
	for k := range strings.SplitSeq(r.URL.Query().Get("keys"), ",") {
		if k = strings.TrimSpace(k); k != "" && len(keys) < 50 {
			keys = append(keys, k)
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	t := time.NewTicker(liveInterval)
	defer t.Stop()
	for {
		var snap LiveSnapshot
		if s.live == nil {
			snap = LiveSnapshot{Error: "live mode is not configured: start synod-viz with -nats (and NATS credentials) to attach to a cluster"}
		} else {
			ctx, cancel := context.WithTimeout(r.Context(), liveInterval)
			snap = s.live.Snapshot(ctx, cluster, keys)
			cancel()
		}
		snap.Time = time.Now().UTC().Format(time.RFC3339)
		b, _ := json.Marshal(snap)
		if _, err := fmt.Fprintf(w, "event: live\ndata: %s\n\n", b); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}
