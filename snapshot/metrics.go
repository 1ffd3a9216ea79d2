package snapshot

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the serving metrics, with istiod's meanings under
// chokepoint's names.
type Metrics struct {
	ConnectedProxies prometheus.Gauge
	Pushes           *prometheus.CounterVec
	Rejects          *prometheus.CounterVec
	PushToAck        *prometheus.HistogramVec
	Builds           *prometheus.CounterVec
	BuildSeconds     prometheus.Histogram
	Classes          prometheus.Gauge
	ConfigProblems   *prometheus.GaugeVec
	InputLoads       *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConnectedProxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chokepoint_xds_connected_proxies", Help: "xDS streams with an identified proxy (pilot_xds)."}),
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chokepoint_xds_pushes_total", Help: "xDS responses sent, by type (pilot_xds_pushes)."}, []string{"type"}),
		Rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chokepoint_xds_rejects_total", Help: "NACKs received from proxies, by type (pilot_total_xds_rejects)."}, []string{"type"}),
		PushToAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chokepoint_xds_push_ack_seconds", Help: "Time from sending a response to its ACK, by type (convergence).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"type"}),
		Builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chokepoint_snapshot_builds_total", Help: "Snapshot builds for proxy classes, by result (ok, unchanged, failed)."}, []string{"result"}),
		BuildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chokepoint_snapshot_build_seconds", Help: "Time to translate, validate and set one proxy class's snapshot (pilot_proxy_convergence_time).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		Classes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chokepoint_proxy_classes", Help: "Proxy classes with a snapshot (proxies sharing effective inputs share one)."}),
		ConfigProblems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chokepoint_config_problems", Help: "Problems in the current inputs, by severity (pilot_total_xds_internal_errors / config errors)."}, []string{"severity"}),
		InputLoads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chokepoint_inputs_loads_total", Help: "Input reloads, by result (ok, errors)."}, []string{"result"}),
	}
	reg.MustRegister(m.ConnectedProxies, m.Pushes, m.Rejects, m.PushToAck, m.Builds, m.BuildSeconds, m.Classes, m.ConfigProblems, m.InputLoads)
	return m
}
