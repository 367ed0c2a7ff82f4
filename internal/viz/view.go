package viz

import (
	"fmt"
	"slices"

	"github.com/protosynod/protosynod/synod"
)

// View is what the page shows of a session, as JSON.
type View struct {
	Seed       uint64         `json:"seed"`
	Step       int            `json:"step"`
	ScriptLeft int            `json:"scriptLeft"`
	Scenario   string         `json:"scenario,omitempty"`
	Quiet      bool           `json:"quiet"`
	Acceptors  []AcceptorView `json:"acceptors"`
	Proposers  []ProposerView `json:"proposers"`
	Messages   []MessageView  `json:"messages"`
	Ops        []OpView       `json:"ops"`
	Events     []EventView    `json:"events"` // newest first
	Next       *Choice        `json:"next,omitempty"`
	Error      string         `json:"error,omitempty"`
}

// AcceptorView is one acceptor's durable state.
type AcceptorView struct {
	ID   string    `json:"id"`
	Up   bool      `json:"up"`
	Keys []KeyView `json:"keys"`
}

// KeyView is one register at one acceptor.
type KeyView struct {
	Key      string `json:"key"`
	Promised string `json:"promised"`
	Accepted string `json:"accepted"`
	Value    string `json:"value"`
}

// ProposerView is one proposer and its current proposal.
type ProposerView struct {
	Index      int         `json:"index"`
	ID         string      `json:"id"`
	General    string      `json:"general"`
	Op         *OpView     `json:"op,omitempty"`
	Status     string      `json:"status,omitempty"`
	Ballot     string      `json:"ballot,omitempty"`
	Attempts   int         `json:"attempts,omitempty"`
	Yes        int         `json:"yes"`
	No         int         `json:"no"`
	Need       int         `json:"need"`
	Latest     string      `json:"latest,omitempty"`
	LatestB    string      `json:"latestBallot,omitempty"`
	Cached     []CacheView `json:"cached"`
	Queue      []string    `json:"queue"`
	NeedsRetry bool        `json:"needsRetry"`
	CanRetry   bool        `json:"canRetry"`
}

// CacheView is a one-round-trip entry.
type CacheView struct {
	Key   string `json:"key"`
	Next  string `json:"next"`
	Value string `json:"value"`
}

// MessageView is one message in flight.
type MessageView struct {
	ID     int    `json:"id"`
	Kind   string `json:"kind"`
	From   string `json:"from"`
	To     string `json:"to"`
	Key    string `json:"key"`
	Ballot string `json:"ballot"`
	Reply  bool   `json:"reply"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// OpView is one operation of the timeline.
type OpView struct {
	ID       int    `json:"id"`
	Who      string `json:"who"`
	Proposer string `json:"proposer"`
	Cmd      string `json:"cmd"`
	Key      string `json:"key"`
	Call     int    `json:"call"`
	Return   int    `json:"return,omitempty"`
	State    string `json:"state"`   // queued, running, done
	Outcome  string `json:"outcome"` // ok, refused, indeterminate, not-applied
	Result   string `json:"result"`
	Attempts int    `json:"attempts"`
	FastPath bool   `json:"fastPath"`
	Ran      int    `json:"ran"`
}

// EventView is one step of the event log.
type EventView struct {
	Step   int      `json:"step"`
	Choice Choice   `json:"choice"`
	Lines  []string `json:"lines"`
	Code   []string `json:"code"`
}

// View returns what the page shows.
func (s *Session) View() View {
	v := View{Seed: s.seed, Step: len(s.choices), ScriptLeft: len(s.script), Quiet: s.Quiet(),
		Messages: []MessageView{}, Ops: []OpView{}, Events: []EventView{}}
	if len(s.script) > 0 {
		c := s.script[0]
		v.Next = &c
	}
	keys := []string{MissileKey, CounterKey}
	for _, a := range s.acceptors {
		av := AcceptorView{ID: a.id, Up: a.up, Keys: []KeyView{}}
		for _, k := range keys {
			st := a.state[k]
			val := "—"
			if !st.Accepted.IsZero() {
				val = describeValue(k, st.Value)
			}
			av.Keys = append(av.Keys, KeyView{Key: k, Promised: st.Promised.String(), Accepted: st.Accepted.String(), Value: val})
		}
		v.Acceptors = append(v.Acceptors, av)
	}
	for _, p := range s.proposers {
		pv := ProposerView{Index: p.index, ID: ProposerIDs[p.index], General: Generals[p.index], Cached: []CacheView{}, Queue: []string{}}
		for _, k := range keys {
			if next, val, ok := p.p.Cached(k); ok {
				pv.Cached = append(pv.Cached, CacheView{Key: k, Next: next.String(), Value: describeValue(k, val)})
			}
		}
		for _, op := range p.queue {
			pv.Queue = append(pv.Queue, fmt.Sprintf("%d: %s", op.ID, describeCmd(op.Proposer, op.Cmd)))
		}
		if pr := p.pr; pr != nil {
			ov := s.opView(p.op)
			pv.Op = &ov
			pv.Status = pr.Status().String()
			pv.Ballot = pr.Ballot().String()
			pv.Attempts = pr.Attempts()
			pv.Yes, pv.No = pr.Votes()
			pv.Need = s.cfg.Q1()
			if pr.Status() == synod.StatusAccepting {
				pv.Need = s.cfg.Q2()
			}
			b, val := pr.Latest()
			pv.Latest, pv.LatestB = describeValue(pr.Key(), val), b.String()
			pv.NeedsRetry = s.needsRetry(p)
			pv.CanRetry = s.check(Choice{Act: ActRetry, Proposer: p.index}) == nil
		}
		v.Proposers = append(v.Proposers, pv)
	}
	for _, m := range s.inflight {
		mv := MessageView{ID: m.ID, Kind: m.Kind(), Key: m.Key(), Ballot: m.Ballot().String(), Reply: m.IsReply()}
		if m.IsReply() {
			mv.From, mv.To = m.Acceptor, ProposerIDs[m.Proposer]
		} else {
			mv.From, mv.To = ProposerIDs[m.Proposer], m.Acceptor
		}
		switch {
		case m.Accept != nil:
			mv.Detail = fmt.Sprintf("value %s, next %v", describeValue(m.Key(), m.Accept.Value), m.Accept.Next)
		case m.PrepareReply != nil && m.PrepareReply.OK:
			mv.OK = true
			mv.Detail = fmt.Sprintf("accepted %v", m.PrepareReply.Accepted)
			if !m.PrepareReply.Accepted.IsZero() {
				mv.Detail += " = " + describeValue(m.Key(), m.PrepareReply.Value)
			}
		case m.PrepareReply != nil:
			mv.Kind, mv.Detail = "refused", fmt.Sprintf("prepare refused: seen %v", m.PrepareReply.Seen)
		case m.AcceptReply != nil && m.AcceptReply.OK:
			mv.OK = true
		case m.AcceptReply != nil:
			mv.Kind, mv.Detail = "refused", fmt.Sprintf("accept refused: seen %v", m.AcceptReply.Seen)
		}
		v.Messages = append(v.Messages, mv)
	}
	for _, op := range s.ops {
		v.Ops = append(v.Ops, s.opView(op))
	}
	for _, e := range slices.Backward(s.events) {
		v.Events = append(v.Events, EventView{Step: e.Step, Choice: e.Choice, Lines: e.Lines, Code: e.Code})
		if len(v.Events) == 50 {
			break
		}
	}
	return v
}

func (s *Session) opView(op *Op) OpView {
	ov := OpView{ID: op.ID, Who: Generals[op.Proposer], Proposer: ProposerIDs[op.Proposer], Cmd: op.Cmd, Key: op.Key,
		Call: op.Call, Return: op.Return, Attempts: op.Attempts, FastPath: op.FastPath, Ran: op.Ran, State: "queued"}
	switch {
	case op.Done():
		ov.State = "done"
	case op.Running:
		ov.State = "running"
	}
	if op.Done() {
		ov.Result = s.describeResult(op)
		switch {
		case op.Indeterminate():
			ov.Outcome = "indeterminate"
		case op.NotApplied():
			ov.Outcome = "not-applied"
		case op.Err != nil:
			ov.Outcome = "refused"
		default:
			ov.Outcome = "ok"
		}
	}
	return ov
}
