module github.com/upshift/upshift/pkg

go 1.26

require (
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	pgregory.net/rapid v1.3.0 // indirect
	sigs.k8s.io/yaml v1.6.0 // indirect
)
