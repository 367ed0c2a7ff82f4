package cliflags

import (
	"errors"
	"flag"
	"io"
	"testing"
)

func TestFillFromEnv(t *testing.T) {
	env := map[string]string{"SYNOD_NATS": "nats://env:4222", "SYNOD_TLS_CA": "ca.pem", "SYNOD_COUNT": "x"}
	tests := []struct {
		name    string
		args    []string
		wantURL string
		wantErr bool
	}{
		{"environment fills unset flags", nil, "nats://env:4222", false},
		{"command line wins", []string{"-nats", "nats://cli:4222"}, "nats://cli:4222", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			var n NATS
			n.Register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if err := FillFromEnv(fs, func(k string) string { return env[k] }); err != nil {
				t.Fatal(err)
			}
			if n.URLs != tt.wantURL || n.TLSCA != "ca.pem" {
				t.Errorf("got nats=%q tls-ca=%q, want %q and ca.pem", n.URLs, n.TLSCA, tt.wantURL)
			}
		})
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("count", 1, "")
	if err := FillFromEnv(fs, func(k string) string { return env[k] }); err == nil {
		t.Error("SYNOD_COUNT=x for an int flag: got no error")
	}
}

func TestNATSValidate(t *testing.T) {
	if err := (NATS{TLSCert: "c.pem"}).Validate(); !errors.Is(err, ErrTLSPair) {
		t.Errorf("certificate without key: err = %v, want ErrTLSPair", err)
	}
	if _, err := (NATS{NKey: "/nonexistent"}).Options(); err == nil {
		t.Error("missing nkey seed file: got no error")
	}
	opts, err := (NATS{TLSCert: "c.pem", TLSKey: "k.pem", TLSCA: "ca.pem"}).Options()
	if err != nil || len(opts) != 2 {
		t.Errorf("TLS options = %d, %v; want 2 options", len(opts), err)
	}
}

func TestRegisterURL(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var n NATS
	n.RegisterURL(fs, "", "required")
	if err := fs.Parse([]string{"-creds", "u.creds"}); err != nil {
		t.Fatal(err)
	}
	if n.URLs != "" || n.Creds != "u.creds" || fs.Lookup("nats").Usage != "required" {
		t.Errorf("got nats=%q creds=%q usage=%q", n.URLs, n.Creds, fs.Lookup("nats").Usage)
	}
}
