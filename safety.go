package agentbackend

import (
	"regexp"
	"strings"
)

// SafetyCheck is the verdict on a command.
type SafetyCheck struct {
	Safe    bool
	Reason  string // why it was blocked, with guidance on what to do instead
	Group   string // the pattern group that matched ("privilege", "pipe to shell", ...)
	Pattern string // the regular expression that matched
}

// safetyRule is one blocked pattern with the guidance given when it matches.
type safetyRule struct {
	group  string
	re     *regexp.Regexp
	reason string
}

func rules(group, reason string, patterns ...string) []safetyRule {
	out := make([]safetyRule, len(patterns))
	for i, p := range patterns {
		out[i] = safetyRule{group, regexp.MustCompile(p), reason}
	}
	return out
}

// dangerousRules is the pattern table of spec/safety.md, matched against the
// lower-cased command with heredoc bodies removed (and again with its quotes
// removed, see dequote), then this project's additions (extraRules).
var dangerousRules = concat(
	rules("destructive rm", "Recursive or forced rm on a path with /, ~ or * can wipe far more than intended; remove specific files by name, relative to the workspace.",
		`\brm\b.*-rf?\b.*[/~*]`, `\brm\b.*[/~*].*-rf?\b`),
	rules("disk wipe", "Writing to a device with dd destroys data on the host; write to a file in the workspace instead.",
		`\bdd\b.*\bof=/dev/`),
	rules("privilege", "Privilege escalation (sudo, su) is not available to agent commands; run the command as the current user.",
		`\bsudo\b`, `\bsu\b`),
	rules("system modification", "Changing permissions to 777 or ownership to root weakens the host; use the narrowest permissions the task needs (e.g. chmod 644 or 755).",
		`\bchmod\b.*777`, `\bchown\b.*root`),
	rules("pipe to shell", "Piping downloads to a shell runs unreviewed code. Download to a file first (e.g. 'curl -o script.sh <url>'), inspect it, then execute if safe.",
		`curl\b.*\|\s*(sh|bash|zsh|fish)\b`, `wget\b.*\|\s*(sh|bash|zsh|fish)\b`, `\|\s*(sh|bash|zsh|fish)\s*$`),
	rules("network tools", "Direct network tools (nc, telnet, ftp, ssh, scp, rsync) are blocked; use the project's own tooling (git, package managers, curl -o to a file) instead.",
		`\bnc\b`, `\bncat\b`, `\bnetcat\b`, `\btelnet\b`, `\bftp\b`, `\bssh\b`, `\bscp\b`, `\brsync\b`),
	rules("process/system control", "Killing arbitrary processes or stopping the system is blocked; end your own commands with their timeout, or kill a process you started by its PID without -9.",
		`\bkill\s+-9`, `\bkillall\b`, `\bpkill\b`, `\bshutdown\b`, `\breboot\b`, `\bhalt\b`, `\binit\s+[06]\b`),
	rules("filesystems", "Mounting, formatting or checking filesystems is blocked; work with files inside the workspace.",
		`\bmount\b`, `\bumount\b`, `\bfdisk\b`, `\bmkfs\b`, `\bfsck\b`),
	rules("command substitution", "Command substitution (backticks or $(...)) hides what runs; run the inner command first, read its output, then use the value.",
		"`[^`]+`", `\$\([^)]+\)`),
	rules("remote code execution", "eval runs text as code; run the command directly.",
		`\beval\b`),
	rules("resource exhaustion", "This looks like a fork bomb or an endless loop; bound loops and give commands a timeout.",
		`:\(\)`, `fork\(\)`, `\bwhile\s+true\b`, `\byes\b.*>\s*/dev/null`),
	rules("network tampering", "Changing firewall rules or network interfaces is blocked.",
		`\biptables\b`, `\bifconfig\b.*\bdown\b`),
	rules("system files", "Writing to /etc changes the host's configuration; write inside the workspace instead.",
		`>>?\s*/etc/`, `\bcat\b.*>\s*/etc/`, `\becho\b.*>\s*/etc/`),
	rules("obfuscation", `Empty quotes inside a word (r""m) disguise a command; write the command plainly.`,
		`[a-z]""[a-z]`),
	rules("traversal", "cp, mv and ln with ../ reach outside the working directory; use paths inside the workspace.",
		`\b(cp|mv|ln)\b.*\.\./`),
	rules("symlink creation", "Symbolic links can point outside the workspace; copy the file instead.",
		`\bln\s+-s`),
	extraRules,
)

// extraRules go beyond the specification's table (its patterns are the
// floor): the spellings that slip past it (`ln -fs`, `ln --symbolic`,
// `rm -fr /`, `kill -KILL`; quoting, as in `..'/x'`, is
// undone before a second match), and close relatives of what it blocks.
// TestOrdinaryCommandsPass measures what they cost.
var extraRules = concat(
	rules("symlink creation", "Symbolic links can point outside the workspace; copy the file instead.",
		`\bln\b[^;&|\n]*\s(-[a-z]*s|--sym)`),
	rules("destructive rm", "Recursive or forced rm on a path with /, ~ or * can wipe far more than intended; remove specific files by name, relative to the workspace.",
		`\brm\b[^;&|\n]*\s(-[a-z]*r|--recursive)[^;&|\n]*\s[/~*]`, `\brm\b[^;&|\n]*\s[/~*][^;&|\n]*\s(-[a-z]*r|--recursive)`),
	rules("privilege", "Privilege escalation and namespace tricks are not available to agent commands; run the command as the current user.",
		`\bdoas\b`, `\bpkexec\b`, `\bnsenter\b`, `\bunshare\b`, `\bchroot\b`, `\bsetcap\b`, `\bcapsh\b`),
	rules("system modification", "Setuid and setgid bits hand the file's owner's rights to whoever runs it; use the narrowest permissions the task needs (e.g. chmod 644 or 755).",
		`\bchmod\b[^;&|\n]*(\+[rwxt]*s|\s[2-7][0-7]{3}\b)`),
	rules("pipe to shell", "Feeding a download or a stream to a shell runs unreviewed code. Download to a file first (e.g. 'curl -o script.sh <url>'), inspect it, then execute if safe.",
		`\|\s*(dash|ksh|mksh|busybox\s+sh)\b`, `\b(sh|bash|zsh|dash|ksh)\s+<\(`),
	rules("network tools", "Direct network tools (nc, socat, telnet, ssh, /dev/tcp, ...) are blocked; use the project's own tooling (git, package managers, curl -o to a file) instead.",
		`\bsocat\b`, `/dev/(tcp|udp)/`),
	rules("process/system control", "Killing arbitrary processes or stopping the system is blocked; end your own commands with their timeout, or kill a process you started by its PID without -9.",
		`\bkill\s+(-s\s+)?-?(sig)?(kill|9)\b`, `\bpoweroff\b`),
)

// escapeRules is the workspace-escape table of spec/safety.md, applied under
// software isolation, where only this check keeps commands in the workspace.
var escapeRules = rules("workspace escape",
	"Commands must stay in the workspace: no cd/pushd/popd, no changes to PATH, HOME or PWD, no ~/ or $HOME, no ../ and no command substitution. Use paths relative to the working directory, or ExecOptions.Cwd.",
	`\bcd\b`, `\bpushd\b`, `\bpopd\b`, `export\s+path=`, `export\s+home=`, `export\s+pwd=`,
	`~/`, `\$home`, `\$\{home\}`, `\.\.[/\\]`, "`[^`]+`", `\$\([^)]+\)`)

func concat(groups ...[]safetyRule) []safetyRule {
	var out []safetyRule
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// DefaultAllowedCommands are the allowed patterns of the specification:
// `gcloud rsync` is a gcloud subcommand, not the rsync binary.
var DefaultAllowedCommands = []*regexp.Regexp{regexp.MustCompile(`\bgcloud\s+(\w+\s+)?rsync\b`)}

// SafetyPolicy checks commands against the dangerous-command patterns of the
// specification. Allow lists patterns (matched against the lower-cased
// command) that are exempt: the text they match is taken out before the
// dangerous patterns run, so `gcloud rsync a b` passes while
// `gcloud rsync a b; sudo x` is still blocked. (The reference lets the whole
// command through when an allowed pattern matches anywhere; that lets
// anything ride along with an allowed command.)
//
// This is a guard-rail against mistaken or hallucinated commands, not a
// sandbox: a determined command gets past any pattern list. Isolation (bwrap,
// Docker) is what contains a command.
type SafetyPolicy struct {
	Allow []*regexp.Regexp
}

// DefaultSafety is the policy CheckCommand uses: the specification's
// patterns with DefaultAllowedCommands.
var DefaultSafety = &SafetyPolicy{Allow: DefaultAllowedCommands}

// CheckCommand checks a command against the dangerous-command patterns with
// the default allow list. Matching is case-insensitive and heredoc bodies
// are ignored (they are data, not commands).
func CheckCommand(command string) SafetyCheck { return DefaultSafety.Check(command) }

// Check checks a command against the dangerous-command patterns, after the
// policy's allowed patterns are taken out.
func (p *SafetyPolicy) Check(command string) SafetyCheck {
	normalized := stripHeredocs(strings.ToLower(command))
	if p != nil {
		for _, re := range p.Allow {
			normalized = re.ReplaceAllLiteralString(normalized, " ")
		}
	}
	return matchQuoted(dangerousRules, normalized)
}

// matchQuoted matches rules against the command as written and, when that
// passes, against the command with its quotes removed: the shell runs
// `..'/bob'`, `l"n" -s` and `s\udo` as `../bob`, `ln -s` and `sudo`.
func matchQuoted(rules []safetyRule, normalized string) SafetyCheck {
	if c := match(rules, normalized); !c.Safe {
		return c
	}
	if d := dequote(normalized); d != normalized {
		return match(rules, d)
	}
	return SafetyCheck{Safe: true}
}

// dequote removes what the shell's quote removal would: single and double
// quotes, and backslashes (a backslash-newline entirely). Roughly: it does
// not know which quotes are themselves quoted, which can only make it block
// more.
func dequote(s string) string {
	if !strings.ContainsAny(s, `'"\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"':
		case '\\':
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					b.WriteByte(s[i])
				}
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// checkWorkspaceEscape checks a command against the workspace-escape
// patterns (cd, $HOME, ../, ...). Software isolation applies it on top of
// CheckCommand.
func checkWorkspaceEscape(command string) SafetyCheck {
	return matchQuoted(escapeRules, stripHeredocs(strings.ToLower(command)))
}

func match(rules []safetyRule, normalized string) SafetyCheck {
	for _, r := range rules {
		if r.re.MatchString(normalized) {
			return SafetyCheck{Reason: r.reason, Group: r.group, Pattern: r.re.String()}
		}
	}
	return SafetyCheck{Safe: true}
}

// heredocStart finds a heredoc operator and its delimiter: <<EOF, <<-EOF,
// <<'EOF', <<"EOF". The here-string <<< is not a heredoc.
var heredocStart = regexp.MustCompile(`<<(-?)[ \t]*(?:'([^'\n]+)'|"([^"\n]+)"|\\?([A-Za-z0-9_.-]+))`)

// stripHeredocs removes the bodies of heredocs from a shell command, keeping
// the lines that start them and the rest of the command. An unterminated
// heredoc runs to the end, as in the shell.
func stripHeredocs(command string) string {
	if !strings.Contains(command, "<<") {
		return command
	}
	lines := strings.Split(command, "\n")
	out := make([]string, 0, len(lines))
	var pending []heredoc // delimiters opened on the current line, in order
	for _, line := range lines {
		if len(pending) > 0 {
			h := pending[0]
			candidate := line
			if h.stripTabs {
				candidate = strings.TrimLeft(line, "\t")
			}
			if candidate == h.delim {
				pending = pending[1:]
			}
			continue // body lines and the closing delimiter are data
		}
		out = append(out, line)
		for _, m := range heredocStart.FindAllStringSubmatchIndex(line, -1) {
			if m[0] > 0 && line[m[0]-1] == '<' {
				continue // part of <<< (here-string)
			}
			delim := ""
			for g := 2; g <= 4; g++ {
				if s, e := m[2*g], m[2*g+1]; s >= 0 {
					delim = line[s:e]
				}
			}
			pending = append(pending, heredoc{delim: delim, stripTabs: m[3] > m[2]})
		}
	}
	return strings.Join(out, "\n")
}

type heredoc struct {
	delim     string
	stripTabs bool
}

// commandCheck is what an exec-capable backend applies before running a
// command: an empty command is EMPTY_COMMAND; one with a NUL byte (which
// no program's argument can hold) is INVALID_ARGUMENT; unless allowDangerous, a
// dangerous one is DANGEROUS_OPERATION; with escapeCheck (software
// isolation), a workspace escape is UNSAFE_COMMAND.
func commandCheck(command string, policy *SafetyPolicy, allowDangerous, escapeCheck bool) error {
	if strings.TrimSpace(command) == "" {
		return &Error{Code: CodeEmptyCommand, Op: "exec", Message: "Command cannot be empty"}
	}
	if strings.IndexByte(command, 0) >= 0 {
		return &Error{Code: CodeInvalidArgument, Op: "exec", Command: command, Message: "command contains a NUL byte"}
	}
	if !allowDangerous {
		if policy == nil {
			policy = DefaultSafety
		}
		if c := policy.Check(command); !c.Safe {
			return &Error{Code: CodeDangerousOperation, Op: "exec", Command: command,
				Message: "Dangerous operation blocked: " + command + "\n" + c.Reason}
		}
	}
	if escapeCheck {
		if c := checkWorkspaceEscape(command); !c.Safe {
			return &Error{Code: CodeUnsafeCommand, Op: "exec", Command: command,
				Message: "Command blocked: it could leave the workspace: " + command + "\n" + c.Reason}
		}
	}
	return nil
}
