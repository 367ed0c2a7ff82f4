package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's CPU
// times; it is 100 on every Linux platform Go supports.
const clockTicks = 100

// cpuMeter reads the CPU time of the bench process and of every process a
// deployment started, so that a run can report each process's CPU time per
// operation (Linux only; elsewhere it reports nothing).
type cpuMeter struct {
	names []string
	pids  []int
}

func newCPUMeter(d *deployment) *cpuMeter {
	m := &cpuMeter{names: []string{"bench"}, pids: []int{os.Getpid()}}
	if d.nats != nil {
		for i := range d.nats.Size() {
			m.names = append(m.names, d.nats.ServerName(i))
			m.pids = append(m.pids, d.nats.Server(i).Pid())
		}
	}
	for _, p := range d.accProcs {
		m.names = append(m.names, p.Name())
		m.pids = append(m.pids, p.Pid())
	}
	return m
}

// sample returns each process's CPU time so far (-1 where unknown).
func (m *cpuMeter) sample() []time.Duration {
	out := make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		out[i] = procCPU(pid)
	}
	return out
}

// perOp formats each process's CPU time since before per operation.
func (m *cpuMeter) perOp(before []time.Duration, ops int64) string {
	if ops == 0 {
		return ""
	}
	after := m.sample()
	var parts []string
	var total time.Duration
	for i := range m.pids {
		if before[i] < 0 || after[i] < 0 {
			return ""
		}
		d := after[i] - before[i]
		total += d
		parts = append(parts, fmt.Sprintf("%s %dµs", m.names[i], (d/time.Duration(ops)).Microseconds()))
	}
	return fmt.Sprintf("; CPU per op %dµs (%s)", (total / time.Duration(ops)).Microseconds(), strings.Join(parts, ", "))
}

// procCPU returns the user plus system CPU time of pid, or -1.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	// Fields after the command: state(3) ... utime(14) stime(15).
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(u+st) * time.Second / clockTicks
}

// procStatus returns a field of /proc/<pid>/status in bytes (VmRSS, VmHWM),
// or -1.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return -1
}

// batchMeter reads the acceptors' synod_storage_batch_size histogram (keys
// per synced commit, that is per frame that wrote) and their
// synod_storage_sync_duration_seconds histogram, so that a run can report
// how many items each fsync carried, how many fsyncs an operation cost (the
// per-message costs that dominate the CPU profiles shrink as frames grow)
// and how long a synced commit took: the floor under any change's latency,
// since an acceptor answers only once its commit is durable.
type batchMeter struct {
	urls []string
}

// storageSample is the two histograms' sums and counts over every acceptor.
type storageSample struct {
	items, commits  float64 // synod_storage_batch_size sum and count
	syncSecs, syncs float64 // synod_storage_sync_duration_seconds sum and count
	reqSecs, reqs   float64 // synod_acceptor_request_duration_seconds sum and count, every op and outcome
	ok              bool    // every acceptor answered
}

// sample scrapes every acceptor; ok is false if one did not answer.
func (m *batchMeter) sample() storageSample {
	var t storageSample
	if len(m.urls) == 0 {
		return t
	}
	for _, u := range m.urls {
		s, err := scrapeStorage(u)
		if err != nil {
			return storageSample{}
		}
		t.items, t.commits = t.items+s.items, t.commits+s.commits
		t.syncSecs, t.syncs = t.syncSecs+s.syncSecs, t.syncs+s.syncs
		t.reqSecs, t.reqs = t.reqSecs+s.reqSecs, t.reqs+s.reqs
	}
	t.ok = true
	return t
}

// perOp formats, since before, the items per synced commit, the commits per
// operation and acceptor, and the mean duration of a synced commit.
func (m *batchMeter) perOp(before storageSample, ops int64) string {
	now := m.sample()
	if !now.ok || !before.ok || ops == 0 || now.commits <= before.commits {
		return ""
	}
	out := fmt.Sprintf("; acceptor commits: %.1f registers each, %.2f per op and acceptor",
		(now.items-before.items)/(now.commits-before.commits), (now.commits-before.commits)/float64(ops)/float64(len(m.urls)))
	if mean, ok := meanSince(now.syncSecs-before.syncSecs, now.syncs-before.syncs); ok {
		out += fmt.Sprintf(", mean synced commit %v", mean)
	}
	// From a request's arrival at the acceptor to its reply's publish: what
	// the round trip spends inside the acceptor, the commit included; the
	// rest of a change's latency is NATS and the proposer.
	if mean, ok := meanSince(now.reqSecs-before.reqSecs, now.reqs-before.reqs); ok {
		out += fmt.Sprintf(", mean request in the acceptor %v", mean)
	}
	return out
}

// meanSince returns the mean of n observations summing to secs, to the
// microsecond; ok is false when there were none.
func meanSince(secs, n float64) (time.Duration, bool) {
	if n <= 0 {
		return 0, false
	}
	return time.Duration(secs / n * float64(time.Second)).Round(time.Microsecond), true
}

func scrapeStorage(url string) (storageSample, error) {
	var s storageSample
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(b)) {
		var dst *float64
		switch {
		case strings.HasPrefix(line, "synod_storage_batch_size_sum"):
			dst = &s.items
		case strings.HasPrefix(line, "synod_storage_batch_size_count"):
			dst = &s.commits
		case strings.HasPrefix(line, "synod_storage_sync_duration_seconds_sum"):
			dst = &s.syncSecs
		case strings.HasPrefix(line, "synod_storage_sync_duration_seconds_count"):
			dst = &s.syncs
		case strings.HasPrefix(line, "synod_acceptor_request_duration_seconds_sum"):
			dst = &s.reqSecs
		case strings.HasPrefix(line, "synod_acceptor_request_duration_seconds_count"):
			dst = &s.reqs
		default:
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return s, err
		}
		*dst += v
	}
	return s, nil
}
