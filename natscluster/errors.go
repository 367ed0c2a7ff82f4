package natscluster

import "errors"

var (
	// ErrInvalidConfig reports an unusable option, connection or cluster
	// name. The wrapping error names the offending field.
	ErrInvalidConfig = errors.New("natscluster: invalid config")

	// ErrStarted is returned by StartMember and StartClient when the
	// provider has already been started. A Provider serves one cluster
	// member or client; create one per cluster.Cluster.
	ErrStarted = errors.New("natscluster: already started")

	// ErrClosed is returned by StartMember and StartClient after Shutdown.
	ErrClosed = errors.New("natscluster: provider shut down")

	// ErrMalformed reports a membership message that could not be decoded
	// or failed validation. Such messages are logged and dropped.
	ErrMalformed = errors.New("natscluster: malformed message")
)
