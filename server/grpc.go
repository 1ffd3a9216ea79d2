package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/delta/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/rest/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// TLSConfig enables TLS on the xDS port; with ClientCA, clients must present
// a certificate signed by it (mTLS).
type TLSConfig struct {
	CertFile, KeyFile string
	ClientCA          string
}

// XDSOptions configure the gRPC server.
type XDSOptions struct {
	TLS *TLSConfig
	// MaxConcurrentStreams per connection (Envoy opens one ADS stream).
	MaxConcurrentStreams uint32
	// Delta serves the Delta streams (ADS and per-type); nil leaves them to
	// go-control-plane's server on cache.
	Delta delta.Server
}

// NewXDS builds a gRPC server serving ADS (SotW and Delta, ordered) and the
// per-type CDS/EDS/LDS/RDS services from cache, with keepalives tuned like
// istiod's: pings every 30s, dead peers dropped after 10s more.
func NewXDS(ctx context.Context, cache cachev3.Cache, callbacks serverv3.Callbacks, opts XDSOptions) (*grpc.Server, error) {
	gopts := []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(4 << 20),
		grpc.ForceServerCodecV2(newXDSCodec()),
	}
	if opts.MaxConcurrentStreams > 0 {
		gopts = append(gopts, grpc.MaxConcurrentStreams(opts.MaxConcurrentStreams))
	}
	if opts.TLS != nil {
		creds, err := serverCredentials(opts.TLS)
		if err != nil {
			return nil, err
		}
		gopts = append(gopts, grpc.Creds(creds))
	}
	g := grpc.NewServer(gopts...)
	var xds serverv3.Server
	if opts.Delta != nil {
		xds = serverv3.NewServerAdvanced(rest.NewServer(cache, callbacks),
			sotw.NewServer(ctx, cache, callbacks, sotw.WithOrderedADS()), opts.Delta)
	} else {
		xds = serverv3.NewServer(ctx, cache, callbacks, sotw.WithOrderedADS())
	}
	discovery.RegisterAggregatedDiscoveryServiceServer(g, xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, xds)
	return g, nil
}

func serverCredentials(c *TLSConfig) (credentials.TransportCredentials, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("xDS TLS: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("xDS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("xDS client CA %s: no certificates found", c.ClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}
