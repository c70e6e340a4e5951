package sandbox

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// serveControl answers the sandbox-only endpoints under /_sandbox/ (documented in
// docs/sandbox.md). trailkeeper itself never calls them: they exist so that tests
// and scripts can wait for events instead of sleeping.
func (s *Sandbox) serveControl(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /_sandbox/health":
		reply(200, map[string]string{"status": "ok"})
	case "POST /_sandbox/cloudtrail/deliver":
		s.Deliver()
		reply(200, map[string]string{"status": "delivered"})
	case "POST /_sandbox/slow":
		q := r.URL.Query()
		d, err := time.ParseDuration(q.Get("delay"))
		n, _ := strconv.Atoi(q.Get("count"))
		if err != nil || q.Get("method") == "" || q.Get("subresource") == "" || n < 1 {
			reply(400, map[string]string{"error": "give method, subresource, delay (5s) and count (1 or more)"})
			return
		}
		s.SlowDown(q.Get("method"), q.Get("subresource"), d, n)
		reply(200, map[string]string{"status": "armed"})
	case "POST /_sandbox/cloudtrail/stop-quietly":
		q := r.URL.Query()
		if err := s.StopLoggingQuietly(q.Get("account"), q.Get("trail")); err != nil {
			reply(404, map[string]string{"error": err.Error()})
			return
		}
		reply(200, map[string]string{"status": "stopped"})
	case "POST /_sandbox/s3/deliver-inventory":
		if err := s.DeliverInventory(r.Context()); err != nil {
			reply(500, map[string]string{"error": err.Error()})
			return
		}
		reply(200, map[string]string{"status": "delivered"})
	case "POST /_sandbox/events/run-schedules":
		if err := s.RunSchedules(r.Context()); err != nil {
			reply(500, map[string]string{"error": err.Error()})
			return
		}
		reply(200, map[string]string{"status": "ran"})
	case "POST /_sandbox/cloudtrail/rotate-key":
		region := r.URL.Query().Get("region")
		if region == "" {
			reply(400, map[string]string{"error": "name the region: ?region=us-east-1"})
			return
		}
		if err := s.RotateSigningKey(region); err != nil {
			reply(500, map[string]string{"error": err.Error()})
			return
		}
		reply(200, map[string]string{"status": "rotated"})
	case "POST /_sandbox/replication/wait":
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := s.WaitReplication(ctx); err != nil {
			reply(504, map[string]string{"error": err.Error()})
			return
		}
		reply(200, map[string]string{"status": "idle"})
	case "GET /_sandbox/replication":
		q := r.URL.Query()
		st, reason, err := s.ReplicationFailure(q.Get("bucket"), q.Get("key"), q.Get("versionId"))
		if err != nil {
			reply(404, map[string]string{"error": err.Error()})
			return
		}
		reply(200, map[string]string{"status": st, "reason": reason})
	case "GET " + snsCertPath:
		s.snsSign.init()
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(s.snsSign.certPEM)
	case "GET /_sandbox/calls":
		reply(200, s.Calls())
	case "DELETE /_sandbox/calls":
		s.ResetCalls()
		reply(200, map[string]string{"status": "reset"})
	default:
		reply(404, map[string]string{"error": "unknown sandbox endpoint " + r.Method + " " + r.URL.Path})
	}
}

// certificate returns the TLS certificate and its CA, kept in the data dir so
// that clients trusting the CA (AWS_CA_BUNDLE) keep working across restarts.
func (s *Sandbox) certificate() (tls.Certificate, []byte, error) {
	path := ""
	if s.opts.DataDir != "" {
		path = filepath.Join(s.opts.DataDir, "tls.pem")
		if data, err := os.ReadFile(path); err == nil {
			var certPEM, keyPEM, caPEM []byte
			for rest := data; ; {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				enc := pem.EncodeToMemory(b)
				switch b.Type {
				case "CERTIFICATE":
					certPEM = append(certPEM, enc...)
					caPEM = enc // the last certificate is the CA
				case "EC PRIVATE KEY":
					keyPEM = enc
				}
			}
			if cert, err := tls.X509KeyPair(certPEM, keyPEM); err == nil {
				return cert, caPEM, nil
			}
		}
	}
	cert, caPEM, err := selfSignedCert()
	if err != nil || path == "" {
		return cert, caPEM, err
	}
	key, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		return cert, caPEM, err
	}
	var out []byte
	for _, der := range cert.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: key})...)
	return cert, caPEM, os.WriteFile(path, out, 0o600)
}

// selfSignedCert makes a CA and a server certificate for localhost and 127.0.0.1.
func selfSignedCert() (tls.Certificate, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trailkeeper sandbox CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), DNSNames: []string{"localhost", "*.localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}, caPEM, nil
}
