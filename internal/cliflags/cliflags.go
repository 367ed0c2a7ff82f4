// Package cliflags holds what protosynod's commands share on their command
// lines: every flag can also be set through a SYNOD_* environment variable, and
// the NATS connection flags (URLs, credentials, nkey, TLS) turn into
// nats.Options the same way everywhere.
package cliflags

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// EnvName is the environment variable of a flag: SYNOD_TLS_CERT for tls-cert.
func EnvName(flagName string) string {
	return "SYNOD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// FillFromEnv sets every flag of fs that the command line left unset from its
// environment variable, if that is not empty. Call it after fs.Parse: a flag on
// the command line wins.
func FillFromEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(EnvName(f.Name)); v != "" && !set[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}

// NATS is the connection flags.
type NATS struct {
	URLs            string
	Creds, NKey     string
	TLSCert, TLSKey string
	TLSCA           string
}

// Register adds -nats, -creds, -nkey, -tls-cert, -tls-key and -tls-ca to fs.
func (n *NATS) Register(fs *flag.FlagSet) {
	n.RegisterURL(fs, nats.DefaultURL, "NATS server URLs, comma-separated")
}

// RegisterURL is Register with another default and usage for -nats.
func (n *NATS) RegisterURL(fs *flag.FlagSet, def, usage string) {
	fs.StringVar(&n.URLs, "nats", def, usage)
	fs.StringVar(&n.Creds, "creds", "", "NATS user credentials file")
	fs.StringVar(&n.NKey, "nkey", "", "NATS nkey seed file")
	fs.StringVar(&n.TLSCert, "tls-cert", "", "TLS client certificate file (with -tls-key)")
	fs.StringVar(&n.TLSKey, "tls-key", "", "TLS client key file (with -tls-cert)")
	fs.StringVar(&n.TLSCA, "tls-ca", "", "TLS root CA file for the NATS servers")
}

// ErrTLSPair reports a TLS certificate without its key or the other way round.
var ErrTLSPair = errors.New("-tls-cert and -tls-key go together")

// Validate reports inconsistent connection flags.
func (n NATS) Validate() error {
	if (n.TLSCert == "") != (n.TLSKey == "") {
		return ErrTLSPair
	}
	return nil
}

// Options returns the nats.Options for the credentials and TLS flags; the
// caller adds its own (name, handlers, reconnect policy).
func (n NATS) Options() ([]nats.Option, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	if n.Creds != "" {
		opts = append(opts, nats.UserCredentials(n.Creds))
	}
	if n.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(n.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey %s: %w", n.NKey, err)
		}
		opts = append(opts, o)
	}
	if n.TLSCert != "" {
		opts = append(opts, nats.ClientCert(n.TLSCert, n.TLSKey))
	}
	if n.TLSCA != "" {
		opts = append(opts, nats.RootCAs(n.TLSCA))
	}
	return opts, nil
}
