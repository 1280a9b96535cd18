// Command osprey is the interface engine's one binary: it serves channels, validates and
// tests configurations, and carries the tools an interface analyst reaches for (send, listen,
// hl7 get/fmt/ack).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. Each lives in its own file and registers itself from init(),
// so adding a tool never touches this file.
type command struct {
	name    string                                                                  // "send", or "hl7 get" for a nested command
	summary string                                                                  // one line for `osprey help`
	usage   string                                                                  // argument synopsis, e.g. "--to HOST:PORT FILE|DIR|-"
	run     func(ctx context.Context, env *cliEnv, c *command, args []string) error // c is the command itself, for its flags and usage
}

// cliEnv carries the process's streams so commands can be tested without a subprocess.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("osprey: command " + c.name + " registered twice")
	}
	commands[c.name] = c
}

// errUsage makes main print the command's usage and exit 2.
var errUsage = errors.New("usage")

// exitError lets a command choose its exit status (e.g. `send` exits 1 when an ACK was not AA).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(runCLI(ctx, &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}

func runCLI(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(env.stdout)
		return 0
	}
	c, rest := lookup(args)
	if c == nil {
		fmt.Fprintf(env.stderr, "osprey: unknown command %q; run 'osprey help'\n", strings.Join(args[:min(len(args), 2)], " "))
		return 2
	}
	err := c.run(ctx, env, c, rest)
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.stderr, "usage: osprey %s %s\n", c.name, c.usage)
		return 2
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(env.stderr, ee.msg)
		}
		return ee.code
	default:
		fmt.Fprintf(env.stderr, "osprey %s: %v\n", c.name, err)
		return 1
	}
}

// lookup finds the longest registered command name that prefixes args ("hl7 get" before "hl7").
func lookup(args []string) (*command, []string) {
	for n := min(len(args), 3); n > 0; n-- {
		if c, ok := commands[strings.Join(args[:n], " ")]; ok {
			return c, args[n:]
		}
	}
	return nil, nil
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "osprey: the radiology interface engine (HL7v2, FHIR R4, DICOMweb, AI plugins)")
	fmt.Fprintln(w, "\nusage: osprey COMMAND [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'osprey COMMAND -h' for a command's flags.")
}

// newFlags returns a FlagSet that prints the command's usage on -h and reports errors as values.
func newFlags(env *cliEnv, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("osprey "+c.name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: osprey %s %s\n\n%s\n\nflags:\n", c.name, c.usage, c.summary)
		fs.PrintDefaults()
	}
	return fs
}
