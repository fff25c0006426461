package consumer

import "flag"

// Register adds the flags an operator tunes a service's consumers with,
// defaulting to c's values (or the runner's defaults where c has none).
func (c *Config) Register(fs *flag.FlagSet) {
	d := c.withDefaults()
	fs.DurationVar(&c.AckWait, "ack-wait", d.AckWait, "how long a message may go unacknowledged before it is delivered again (a crashed instance's work)")
	fs.IntVar(&c.MaxDeliver, "max-deliver", d.MaxDeliver, "deliveries of a message before it is given up and dead-lettered")
}
