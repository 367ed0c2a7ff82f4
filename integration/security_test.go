package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/integration/harness"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// authConfig is a nats-server authorization block with one user per
// acceptor (subscribe to its own subjects and micro's $SRV.>, publish to
// reply subjects), a proposer (publish to acceptor subjects, subscribe to
// its inbox), an intruder (inbox only) and a probe user for the harness's
// readiness check.
//
// An acceptor also publishes to its own subjects and subscribes to _INBOX.>:
// before it serves, synod-acceptor sends a request to its own subjects to
// detect a second instance of the same acceptor ID (natstransport.Serve), and
// nats.go receives the answer on its _INBOX.> response subscription.
func authConfig(acceptors int) string {
	var users []string
	for i := range acceptors {
		own := fmt.Sprintf("synod.%s.a%d.>", clusterName, i)
		users = append(users, fmt.Sprintf(
			`{user: a%d, password: pw-a%d, permissions: {subscribe: [%q, "$SRV.>", "_INBOX.>"], publish: ["_INBOX.>", %q]}}`,
			i, i, own, own))
	}
	users = append(users,
		fmt.Sprintf(`{user: proposer, password: pw-p, permissions: {publish: ["synod.%s.*.frame"], subscribe: ["_INBOX.>"]}}`, clusterName),
		`{user: intruder, password: pw-i, permissions: {publish: ["_INBOX.>"], subscribe: ["_INBOX.>"]}}`,
		`{user: probe, password: pw-probe, permissions: {publish: ">", subscribe: ">"}}`,
	)
	return "authorization {\n  users = [\n    " + strings.Join(users, "\n    ") + "\n  ]\n}\n"
}

// TestPermissions runs acceptors and proposers as NATS users with per-user
// permissions: the proposer user changes registers; a user without publish
// permission on the acceptor subjects cannot prepare or accept, and gets an
// error within its deadline and a permissions violation, not a hang.
func TestPermissions(t *testing.T) {
	skipShort(t)
	const acceptors = 3
	e := startEnv(t, envConfig{
		natsServers: 3, acceptors: acceptors,
		natsOpts: []harness.NATSOption{
			harness.WithServerConfig(authConfig(acceptors)),
			harness.WithClientOptions(nats.UserInfo("probe", "pw-probe")),
		},
		acceptorURL: func(c *harness.NATSCluster, i int) string {
			return fmt.Sprintf("nats://a%d:pw-a%d@%s", i, i, c.ClientAddr(i%c.Size()))
		},
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	p := e.newProposer(t, "proposer", urlsFrom(e.nats, 0), 1, nats.UserInfo("proposer", "pw-p"))
	for i := range 5 {
		want := fmt.Sprintf("v%d", i)
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := p.client.Change(cctx, "secured", func([]byte) ([]byte, error) { return []byte(want), nil })
		ccancel()
		if err != nil || string(got) != want {
			t.Fatalf("proposer user: Change = %q, %v; want %q, nil", got, err, want)
		}
	}

	errs := newAsyncErrors()
	opts := append(proposerConnOptions("intruder", errs), nats.UserInfo("intruder", "pw-i"))
	nc, err := nats.Connect(urlsFrom(e.nats, 1), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tr, err := natstransport.NewTransport(nc, clusterName)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	intruder, err := synod.NewClient(synod.RandomProposerID("intruder"), e.cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 3 * time.Second
	start := time.Now()
	cctx, ccancel := context.WithTimeout(ctx, deadline)
	got, err := intruder.Change(cctx, "secured", func([]byte) ([]byte, error) { return []byte("evil"), nil })
	ccancel()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("intruder: Change = %q, nil; want an error", got)
	}
	if !errors.Is(err, synod.ErrUnavailable) {
		t.Errorf("intruder: Change error = %v; want synod.ErrUnavailable (nothing could be sent)", err)
	}
	if took > deadline+2*time.Second {
		t.Errorf("intruder: Change took %v with a %v deadline", took, deadline)
	}
	t.Logf("intruder: Change failed after %v: %v", took.Round(time.Millisecond), err)

	// The reason shows up as the connection's asynchronous error.
	for {
		all, wake := errs.all()
		var found error
		for _, err := range all {
			if errors.Is(err, nats.ErrPermissionViolation) {
				found = err
			}
		}
		if found != nil {
			t.Logf("intruder: connection reported %v", found)
			break
		}
		select {
		case <-wake:
		case <-ctx.Done():
			t.Fatalf("intruder: no permissions violation reported; async errors: %v", all)
		}
	}

	// PrepareAt (used by tools) fails too, within its deadline.
	pctx, pcancel := context.WithTimeout(ctx, deadline)
	_, err = tr.PrepareAt(pctx, "a0", synod.PrepareRequest{Key: "secured", Ballot: synod.Ballot{Counter: 1 << 40, Proposer: intruder.ID()}})
	pcancel()
	if err == nil {
		t.Fatal("intruder: PrepareAt succeeded")
	}
	t.Logf("intruder: PrepareAt: %v", err)

	// The register still holds the proposer's last value.
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	if v, err := p.client.Read(rctx, "secured"); err != nil || string(v) != "v4" {
		t.Errorf("after the intruder: Read = %q, %v; want \"v4\"", v, err)
	}
}

// TestTLS runs the acceptors and a proposer over TLS with client
// certificates signed by a throwaway CA, and checks that a client without a
// certificate is turned away.
func TestTLS(t *testing.T) {
	skipShort(t)
	files, err := harness.WriteTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, envConfig{
		natsServers: 3, acceptors: 3,
		natsOpts: []harness.NATSOption{
			harness.WithServerConfig(files.ServerConfig(true)),
			harness.WithClientOptions(files.ClientOptions()...),
		},
		acceptorArgs: []string{"-tls-cert", files.ClientCert, "-tls-key", files.ClientKey, "-tls-ca", files.CA},
	})
	e.natsOpts = files.ClientOptions()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	p := e.newProposer(t, "tls-proposer", urlsFrom(e.nats, 0), 1)
	if !p.nc.TLSRequired() {
		t.Errorf("proposer connection does not use TLS")
	}
	for i := range 5 {
		want := fmt.Sprintf("v%d", i)
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := p.client.Change(cctx, "tls", func([]byte) ([]byte, error) { return []byte(want), nil })
		ccancel()
		if err != nil || string(got) != want {
			t.Fatalf("TLS: Change = %q, %v; want %q, nil", got, err, want)
		}
	}

	// Without a client certificate the server refuses the connection.
	nc, err := nats.Connect(e.nats.ClientURL(0), nats.RootCAs(files.CA), nats.Timeout(5*time.Second))
	if err == nil {
		nc.Close()
		t.Fatal("connected without a client certificate")
	}
	t.Logf("without a client certificate: %v", err)
	// Nor does a client that does not trust the CA get in.
	nc, err = nats.Connect(e.nats.ClientURL(0), nats.ClientCert(files.ClientCert, files.ClientKey), nats.Timeout(5*time.Second))
	if err == nil {
		nc.Close()
		t.Fatal("connected without trusting the CA")
	}
	t.Logf("without the CA: %v", err)
}
