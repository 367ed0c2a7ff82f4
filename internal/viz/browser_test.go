package viz

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/protosynod/protosynod/internal/acceptortest"
	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// findBrowser returns a Chromium or Chrome executable: $SYNOD_VIZ_BROWSER,
// else the first of Debian's chromium and its usual other names on PATH.
func findBrowser() string {
	if p := os.Getenv("SYNOD_VIZ_BROWSER"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// screenshotDir returns the directory the browser test saves its screenshots
// in: $SYNOD_VIZ_SCREENSHOTS, else synod-viz-screenshots in the temporary
// directory, emptied first.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("SYNOD_VIZ_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "synod-viz-screenshots")
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser drives one page of the visualizer in headless Chromium.
type browser struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	shot int
}

// run runs chromedp actions, failing the test with what was being done.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.screenshot("failure")
		b.t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until the JavaScript expression is true.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	b.run("wait for "+what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
}

// step returns the step number the page shows.
func (b *browser) step() int {
	b.t.Helper()
	n, err := strconv.Atoi(b.text("#stepno"))
	if err != nil {
		b.t.Fatalf("step: %v", err)
	}
	return n
}

// click clicks the element of sel and waits until the page shows the step
// after it (every click that makes a choice is one step).
func (b *browser) click(what, sel string) {
	b.t.Helper()
	n := b.step()
	b.run("click "+what, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	b.waitJS(what+" to show", fmt.Sprintf("document.body.dataset.step === %q", strconv.Itoa(n+1)))
}

// clickAndWait clicks sel and waits for the JavaScript condition.
func (b *browser) clickAndWait(what, sel, cond string) {
	b.t.Helper()
	b.run("click "+what, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	b.waitJS(what, cond)
}

// text returns the text of sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.screenshot("failure")
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// expect checks that the text of sel contains want.
func (b *browser) expect(sel, want string) {
	b.t.Helper()
	if got := b.text(sel); !strings.Contains(got, want) {
		b.screenshot("failure")
		b.t.Fatalf("%s shows %q, want it to contain %q", sel, got, want)
	}
}

// count returns how many elements match sel.
func (b *browser) count(sel string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		b.t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

func (b *browser) screenshot(name string) {
	b.shot++
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.shot, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

// msg is the selector of a message row.
func msg(kind, from, to string) string {
	return fmt.Sprintf(`#messages tr.msg[data-kind=%q][data-from=%q][data-to=%q]`, kind, from, to)
}

// cell is the selector of acceptor a's cell class for key.
func cell(a, key, class string) string {
	return fmt.Sprintf(`#acceptor-%s tr[data-key=%q] .%s`, a, key, class)
}

// TestBrowser opens the page in headless Chromium, clicks through the
// dueling-proposers scenario and the missile launch, and checks what the page
// shows. It saves screenshots in the directory it logs.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the browser test")
	}
	exe := findBrowser()
	if exe == "" {
		t.Skip("no Chromium found (looked for $SYNOD_VIZ_BROWSER, chromium, chromium-browser, google-chrome): " +
			"install Debian's chromium (apt-get update && apt-get install -y chromium), as .ci/run does")
	}
	// A real cluster for the live tab: three acceptors on an embedded NATS,
	// with one register written through them.
	cluster := acceptortest.Start(t, "vizlive", 3)
	live := NATSLive{NC: natstest.Connect(t, cluster.Server), URL: cluster.Server.ClientURL()}
	writeLiveKey(t, cluster)
	srv := httptest.NewServer(NewServer(WithLive(live)))
	defer srv.Close()
	dir := screenshotDir(t)
	t.Logf("browser %s; screenshots in %s", exe, dir)

	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1600, 1300),
	)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	b := &browser{t: t, ctx: ctx, dir: dir}
	// The first Run starts the browser, which lives as long as ctx: no timeout
	// on it; every later action gets its own (see run).
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/?seed=1")); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}

	b.waitJS("the first view", `document.body.dataset.step === "0" && document.querySelector("#conn").textContent === "connected"`)
	b.expect("#acceptor-a1", "ø")

	t.Run("dueling", func(t *testing.T) { b.t = t; dueling(b) })
	t.Run("missile", func(t *testing.T) { b.t = t; missile(b) })
	t.Run("live", func(t *testing.T) {
		b.t = t
		b.clickAndWait("the live tab", "#tab-live", `!document.querySelector("#live-view").hidden`)
		b.run("choose the cluster and key", chromedp.SetValue(chromedp.CSS("#live-cluster"), "vizlive"), chromedp.SetValue(chromedp.CSS("#live-keys"), "greeting"))
		b.clickAndWait("attach", "#live-attach", `document.querySelectorAll("#live-body .card").length === 3`)
		b.expect("#live-body", "vizlive / a0")
		b.expect("#live-body", "prepare")
		b.waitJS("greeting's ballots", `document.querySelector("#live-body").textContent.includes("1/viz-test")`)
		b.expect("#live-body", "5 bytes")
		b.screenshot("live-cluster")
	})
}

// dueling clicks through the dueling-proposers scenario.
func dueling(b *browser) {
	b.run("choose the scenario", chromedp.SetValue(chromedp.CSS("#scenario"), "dueling"))
	b.clickAndWait("load", "#load", `document.querySelector("#message").textContent.includes("loaded")`)
	b.expect("#scenario-info", "Dueling proposers")
	b.click("step: Lee's counter +1 on p0", "#step")
	b.click("step: Ross's counter +1 on p1", "#step")
	if n := b.count(`#messages tr.msg[data-kind="prepare"]`); n != 6 {
		b.t.Fatalf("%d prepares in flight, want 6", n)
	}
	b.expect("#proposer-0 .ballot", "1/p0")
	b.expect("#proposer-1 .ballot", "1/p1")
	b.screenshot("dueling-prepares-sent")

	b.click("deliver prepare p0→a1", msg("prepare", "p0", "a1")+" button.deliver")
	b.click("deliver prepare p0→a2", msg("prepare", "p0", "a2")+" button.deliver")
	b.expect(cell("a1", CounterKey, "promised"), "1/p0")
	b.expect("#code-engine", "func (s AcceptorState) Prepare(")
	b.click("drop prepare p0→a3", msg("prepare", "p0", "a3")+" button.drop")
	b.expect("#events li.latest", "dropped")
	if n := b.count(msg("prepare", "p0", "a3")); n != 0 {
		b.t.Fatal("the dropped prepare is still in flight")
	}
	b.expect(cell("a3", CounterKey, "promised"), "ø")
	b.click("deliver promise a1→p0", msg("promise", "a1", "p0")+" button.deliver")
	b.expect("#proposer-0 .votes", "1 of 2")
	b.click("deliver promise a2→p0", msg("promise", "a2", "p0")+" button.deliver")
	b.expect("#proposer-0 .status", "Accepting")
	b.expect("#code-state", "func counterInc(")
	for _, a := range AcceptorIDs {
		b.click("deliver prepare p1→"+a, msg("prepare", "p1", a)+" button.deliver")
	}
	b.expect(cell("a1", CounterKey, "promised"), "1/p1")
	b.expect(cell("a3", CounterKey, "promised"), "1/p1")
	b.screenshot("dueling-p1-overtakes")

	for _, a := range AcceptorIDs {
		b.click("deliver accept p0→"+a, msg("accept", "p0", a)+" button.deliver")
	}
	b.expect(msg("refused", "a1", "p0"), "seen 1/p1")
	for _, a := range AcceptorIDs {
		b.click("deliver refusal "+a+"→p0", msg("refused", a, "p0")+" button.deliver")
	}
	b.expect("#proposer-0 .status", "Refused")
	b.expect("#proposer-0 .votes", "3 refused")
	b.expect("#code-engine", "func (pr *Proposal) OnAcceptReply(")
	b.screenshot("dueling-p0-refused")

	b.clickAndWait("run to quiescence", "#quiesce", `document.querySelector("#quiet").textContent.startsWith("quiet")`)
	b.expect(`#ops tr[data-op="2"] .result`, "1")
	b.expect(`#ops tr[data-op="1"] .result`, "2")
	b.expect(`#ops tr[data-op="1"] .attempts`, "2")
	for _, a := range AcceptorIDs {
		b.expect(cell(a, CounterKey, "accepted"), "3/p0")
		b.expect(cell(a, CounterKey, "value"), "2")
	}
	b.expect("#proposer-0 .cached", "counter → 4/p0")
	b.screenshot("dueling-quiet")
}

// missile clicks through the missile launch by hand.
func missile(b *browser) {
	b.run("free play", chromedp.SetValue(chromedp.CSS("#scenario"), ""))
	b.clickAndWait("reset", "#reset", `document.body.dataset.step === "0"`)
	b.click("Lee signs", `button[data-cmd="sign"][data-proposer="0"]`)
	b.expect("#proposer-0 .status", "Preparing")
	b.clickAndWait("run to quiescence", "#quiesce", `document.querySelector("#quiet").textContent.startsWith("quiet")`)
	b.expect(`#ops tr[data-op="1"] .result`, "signed: Lee")
	b.expect(cell("a2", MissileKey, "value"), "signed: Lee")
	b.expect("#proposer-0 .cached", "missile → 2/p0")

	b.click("Ross signs", `button[data-cmd="sign"][data-proposer="1"]`)
	for _, a := range AcceptorIDs {
		b.click("deliver prepare p1→"+a, msg("prepare", "p1", a)+" button.deliver")
	}
	b.expect(msg("refused", "a1", "p1"), "seen 2/p0")
	b.click("duplicate the refusal a1→p1", msg("refused", "a1", "p1")+" button.dup")
	if n := b.count(msg("refused", "a1", "p1")); n != 2 {
		b.t.Fatalf("%d refusals a1→p1 in flight after duplicating, want 2", n)
	}
	b.click("deliver refusal a1→p1", msg("refused", "a1", "p1")+" button.deliver")
	b.click("deliver its duplicate", msg("refused", "a1", "p1")+" button.deliver")
	b.expect("#events li.latest", "ignored")
	b.expect("#proposer-1 .votes", "1 refused")
	b.click("deliver refusal a2→p1", msg("refused", "a2", "p1")+" button.deliver")
	b.expect("#proposer-1 .status", "Refused")
	b.click("retry", `#proposer-1 button.retry`)
	b.expect("#proposer-1 .ballot", "3/p1")
	b.clickAndWait("run to quiescence", "#quiesce", `document.querySelector("#quiet").textContent.startsWith("quiet")`)
	b.expect(`#ops tr[data-op="2"] .result`, "LAUNCHED by Lee+Ross")
	for _, a := range AcceptorIDs {
		b.expect(cell(a, MissileKey, "value"), "LAUNCHED by Lee+Ross")
	}
	b.screenshot("missile-launched")

	b.click("Lee revokes", `button[data-cmd="revoke"][data-proposer="0"]`)
	b.clickAndWait("run to quiescence", "#quiesce", `document.querySelector("#quiet").textContent.startsWith("quiet")`)
	b.expect(`#ops tr[data-op="3"] .result`, "refused")
	b.expect(`#ops tr[data-op="3"] .result`, "already launched")
	b.expect(cell("a1", MissileKey, "value"), "LAUNCHED by Lee+Ross")
	b.screenshot("missile-revoke-refused")

	// Seeded auto mode finishes what the generals start.
	b.click("Ross revokes", `button[data-cmd="revoke"][data-proposer="1"]`)
	b.click("Lee counts", `button[data-cmd="inc"][data-proposer="0"]`)
	b.run("fastest auto", chromedp.SetValue(chromedp.CSS("#auto-speed"), "20"))
	b.clickAndWait("auto", "#auto", `document.querySelector("#auto").textContent.startsWith("Auto ▶") && document.querySelector("#quiet").textContent.startsWith("quiet")`)
	b.expect(`#ops tr[data-op="4"] .result`, "launched")
	if n := b.count(`#ops tr.op.done`); n != 5 {
		b.t.Fatalf("%d operations done after auto mode, want 5", n)
	}
	b.screenshot("missile-auto")

	n := b.step()
	b.clickAndWait("undo", "#undo", fmt.Sprintf("document.body.dataset.step === %q", strconv.Itoa(n-1)))
	b.expect("#message", "undone")
	b.screenshot("missile-undo")
}

// writeLiveKey writes the register "greeting" through the cluster's acceptors.
func writeLiveKey(t *testing.T, c *acceptortest.Cluster) {
	t.Helper()
	cl, err := synod.NewClient("viz-test", c.Config(), c.Transport(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Change(ctx, "greeting", func([]byte) ([]byte, error) { return []byte("hello"), nil }); err != nil {
		t.Fatalf("write greeting: %v", err)
	}
}
