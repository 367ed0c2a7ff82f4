package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLoggerOneLinePerCausePerInterval(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	now := time.Unix(0, 0)
	r := New(l, time.Second).WithClock(func() time.Time { return now })
	for range 20000 { // two seconds
		r.Log(slog.LevelError, "enospc", "write failed", "err", "no space")
		now = now.Add(100 * time.Microsecond) // 10,000 a second
	}
	r.Log(slog.LevelError, "eio", "read failed")
	now = now.Add(time.Second)
	r.Log(slog.LevelError, "enospc", "write failed", "err", "no space")
	r.Log(slog.LevelError, "enospc", "write failed", "err", "no space")
	r.Flush()
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`level=ERROR msg="write failed" err="no space"`,
		`level=ERROR msg="write failed" err="no space" repeated=9999 over=1s`,
		`level=ERROR msg="read failed"`,
		`level=ERROR msg="write failed" err="no space" repeated=9999 over=2s`,
		`level=ERROR msg="write failed" err="no space" repeated=1 over=0s`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
