package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
)

// TLSFiles are PEM files for TLS scenarios: a throwaway certificate
// authority, a server certificate for 127.0.0.1 and localhost, and a client
// certificate, both signed by the CA.
type TLSFiles struct {
	CA         string // CA certificate
	ServerCert string
	ServerKey  string
	ClientCert string
	ClientKey  string
}

// WriteTLSFiles creates a fresh CA, server and client certificate (ECDSA
// P-256, valid from an hour ago for a day) and writes them as PEM files into
// dir.
func WriteTLSFiles(dir string) (TLSFiles, error) {
	files := TLSFiles{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLSFiles{}, fmt.Errorf("harness: TLS files: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "protosynod test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return TLSFiles{}, fmt.Errorf("harness: TLS files: CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return TLSFiles{}, fmt.Errorf("harness: TLS files: CA: %w", err)
	}
	if err := writePEM(files.CA, "CERTIFICATE", caDER); err != nil {
		return TLSFiles{}, err
	}
	leaves := []struct {
		serial          int64
		name            string
		usage           x509.ExtKeyUsage
		certOut, keyOut string
	}{
		{2, "127.0.0.1", x509.ExtKeyUsageServerAuth, files.ServerCert, files.ServerKey},
		{3, "protosynod-test-client", x509.ExtKeyUsageClientAuth, files.ClientCert, files.ClientKey},
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return TLSFiles{}, fmt.Errorf("harness: TLS files: %w", err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(l.serial),
			Subject:      pkix.Name{CommonName: l.name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{l.usage},
		}
		if l.usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.ParseIP(LoopbackHost)}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return TLSFiles{}, fmt.Errorf("harness: TLS files: %s: %w", l.name, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return TLSFiles{}, fmt.Errorf("harness: TLS files: %s: %w", l.name, err)
		}
		if err := writePEM(l.certOut, "CERTIFICATE", der); err != nil {
			return TLSFiles{}, err
		}
		if err := writePEM(l.keyOut, "PRIVATE KEY", keyDER); err != nil {
			return TLSFiles{}, err
		}
	}
	return files, nil
}

func writePEM(path, blockType string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("harness: TLS files: %w", err)
	}
	return nil
}

// ServerConfig returns a nats-server tls block for client connections, for
// [WithServerConfig]. With verifyClients, clients must present a certificate
// signed by the CA.
func (f TLSFiles) ServerConfig(verifyClients bool) string {
	return fmt.Sprintf("tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: %t\n  timeout: 5\n}\n",
		f.ServerCert, f.ServerKey, f.CA, verifyClients)
}

// ClientOptions returns nats.go options that trust the CA and present the
// client certificate, for [WithClientOptions].
func (f TLSFiles) ClientOptions() []nats.Option {
	return []nats.Option{nats.RootCAs(f.CA), nats.ClientCert(f.ClientCert, f.ClientKey)}
}
