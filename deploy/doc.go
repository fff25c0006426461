// Package deploy holds what runs upshift as a production system rather than
// as code: the NATS server configuration with a user per service and role
// (nats/), the Prometheus scrape configuration and alert rules
// (prometheus/), the Grafana dashboards and their provisioning (grafana/),
// the container image (docker/) and systemd units (systemd/). It has no
// code; its tests prove those files do what docs/operations.md says.
package deploy
