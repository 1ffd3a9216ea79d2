package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/chokepoint-xds/chokepoint/internal/app"
	"github.com/chokepoint-xds/chokepoint/server"
)

// pki is a throwaway CA with a server and a client certificate.
type pki struct {
	dir                           string
	caPool                        *x509.CertPool
	client                        tls.Certificate
	serverCert, serverKey, caFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		kder, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	p := &pki{dir: dir, caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	sc, sk := issue(2, "chokepoint", x509.ExtKeyUsageServerAuth)
	cc, ck := issue(3, "envoy", x509.ExtKeyUsageClientAuth)
	p.serverCert, p.serverKey, p.caFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(p.serverCert, sc, 0o600))
	require.NoError(t, os.WriteFile(p.serverKey, sk, 0o600))
	require.NoError(t, os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	p.client, err = tls.X509KeyPair(cc, ck)
	require.NoError(t, err)
	return p
}

// TestMutualTLS: with --tls-client-ca, a client with a certificate from the
// CA gets config over ADS; one without a certificate is refused.
func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := app.New(ctx, app.Options{
		Files: []string{"../../examples/httpbin-passthrough"}, XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0",
		TLS: &server.TLSConfig{CertFile: p.serverCert, KeyFile: p.serverKey, ClientCA: p.caFile},
	})
	require.NoError(t, err)
	go a.Run(ctx)

	ask := func(cfg *tls.Config) error {
		conn, err := grpc.NewClient(a.XDSAddr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		require.NoError(t, err)
		defer conn.Close()
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		defer scancel()
		stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
		if err != nil {
			return err
		}
		if err := stream.Send(&discovery.DiscoveryRequest{Node: sidecarNode(), TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster"}); err != nil {
			return err
		}
		r, err := stream.Recv()
		if err != nil {
			return err
		}
		require.NotEmpty(t, r.Resources)
		return nil
	}
	require.NoError(t, ask(&tls.Config{RootCAs: p.caPool, Certificates: []tls.Certificate{p.client}, ServerName: "127.0.0.1"}))
	require.Error(t, ask(&tls.Config{RootCAs: p.caPool, ServerName: "127.0.0.1"}), "a client without a certificate must be refused")
}
