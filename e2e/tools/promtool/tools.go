//go:build tools

// Package tools pins Prometheus's promtool, which checks and unit-tests the chart's alerts
// (e2e/chart/alerts.sh).
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
