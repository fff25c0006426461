// Command upshift-coordinator runs a saga coordinator instance, with its
// NATS and HTTP APIs. Several may run at once against one store.
package main

import (
	"os"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/coordinator/coordinatord"
)

func main() { os.Exit(service.Main(coordinatord.Program(&coordinatord.Settings{}))) }
