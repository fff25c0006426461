package agent

import (
	"errors"
	"flag"

	"github.com/upshift/upshift/pkg/service"
)

// fanOut registers on fs the flags of every program, each once: a flag
// several phases define (--targets, the consumer's, the artifact ones) sets
// the value of each of them. Each program registers its flags on a set of
// its own, as its binary would, so none of their code is repeated here.
func fanOut(fs *flag.FlagSet, programs []service.Program) {
	byName := map[string]*values{}
	for _, p := range programs {
		own := flag.NewFlagSet(p.Name, flag.ContinueOnError)
		p.Flags(own)
		own.VisitAll(func(f *flag.Flag) {
			if v, ok := byName[f.Name]; ok {
				*v = append(*v, f.Value)
				return
			}
			v := &values{f.Value}
			byName[f.Name] = v
			fs.Var(v, f.Name, f.Usage)
		})
	}
}

// values is a flag shared by several phases.
type values []flag.Value

// String is the first phase's: they are given the same value. A secret or
// a URL prints masked, as its own type prints it.
func (v *values) String() string {
	if v == nil || len(*v) == 0 {
		return ""
	}
	return (*v)[0].String()
}

func (v *values) Set(s string) error {
	var errs []error
	for _, x := range *v {
		errs = append(errs, x.Set(s))
	}
	return errors.Join(errs...)
}

// IsBoolFlag lets a shared boolean flag be given without a value.
func (v *values) IsBoolFlag() bool {
	b, ok := (*v)[0].(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
