// Command upshift-verify runs the verify service for the targets in its targets file.
package main

import (
	"os"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/verify"
)

func main() { os.Exit(service.Main(verify.Program(&verify.Settings{}))) }
