package natstransport

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// discoverWindow is how long Discover gathers answers: micro discovery has no
// end-of-answers marker, so every instance that answers within it is counted.
const discoverWindow = 500 * time.Millisecond

// Discover sends a micro discovery request for verb (micro.InfoVerb,
// micro.StatsVerb, ...) to every instance of the ServiceName service and
// decodes into T the answers that arrive within half a second, or until ctx
// ends. Discovery shows which acceptors answer, never which acceptors make up
// a cluster: a configuration must not be guessed from it.
func Discover[T any](ctx context.Context, nc *nats.Conn, verb micro.Verb) ([]T, error) {
	subject, err := micro.ControlSubject(verb, ServiceName, "")
	if err != nil {
		return nil, err
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, discoverWindow)
	defer cancel()
	var out []T
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return out, nil // the gathering window closed
		}
		var v T
		if err := json.Unmarshal(msg.Data, &v); err != nil {
			return nil, fmt.Errorf("natstransport: %s reply from a %s service: %w", verb, ServiceName, err)
		}
		out = append(out, v)
	}
}
