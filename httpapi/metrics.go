package httpapi

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-dev/writ"
)

type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	canceled  prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, store Store) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_http_requests_total", Help: "HTTP API requests by route, method and status.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "writ_http_request_duration_seconds", Help: "HTTP API request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_decisions_total", Help: "Policy decisions answered through /v1/decide, by decision.",
		}, []string{"decision"}),
		canceled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "writ_http_client_disconnects_total", Help: "Requests whose client went away before the answer.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.decisions, m.canceled, &runCollector{store: store})
	return m
}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	if status == 0 {
		status = 200
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// runCollector reports runs by state, read from the store at scrape time.
type runCollector struct{ store Store }

var runsDesc = prometheus.NewDesc("writ_runs", "Runs by state.", []string{"state"}, nil)

func (c *runCollector) Describe(ch chan<- *prometheus.Desc) { ch <- runsDesc }

func (c *runCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.store.CountRuns(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(runsDesc, err)
		return
	}
	for _, s := range writ.RunStates {
		ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
