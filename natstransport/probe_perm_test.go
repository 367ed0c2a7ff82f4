package natstransport

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// An acceptor whose NATS user may not publish its own probe must say that
// permissions are missing, not that another instance serves its subjects.
func TestServeReportsMissingPermissions(t *testing.T) {
	s := natstest.RunServer(t, func(o *server.Options) {
		o.Users = []*server.User{{
			Username: "acceptor",
			Password: "pw",
			Permissions: &server.Permissions{
				// Its own subjects and inboxes may be subscribed, but nothing
				// published except replies: the probe request is refused.
				Subscribe: &server.SubjectPermission{Allow: []string{"synod.demo.a1.>", "_INBOX.>", "$SRV.>"}},
				Publish:   &server.SubjectPermission{Allow: []string{"_INBOX.>", "$SRV.>"}},
			},
		}}
	})
	nc := natstest.Connect(t, s, nats.UserInfo("acceptor", "pw"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := Serve(ctx, nc, "demo", synod.NewAcceptor("a1", synod.NewMemoryStorage()), WithProbeTimeout(200*time.Millisecond))
	if err == nil {
		svc.Stop(ctx)
		t.Fatal("Serve succeeded without permission to publish its probe")
	}
	if !errors.Is(err, nats.ErrPermissionViolation) || errors.Is(err, ErrAlreadyServing) {
		t.Fatalf("Serve error = %v, want a permissions violation and not ErrAlreadyServing", err)
	}
}
