package shellfs

// Exit codes the prelude's functions use for errors they detect themselves.
const (
	ExitNotExist = 100 // ENOENT
	ExitNotDir   = 101 // ENOTDIR
	ExitIsDir    = 102 // EISDIR
	ExitEscape   = 103 // ab_in: a path leads out of the jail
	ExitNotFile  = 104 // not a regular file
	ExitShort    = 105 // the data that arrived is not the length that was sent
)

// prelude defines the file operations. ab_in ROOT... -- PATH... is the
// check of a jailed call (see Pool.RunIn): each ROOT, its links followed
// (ab_resolve), must lie in the one before it, and each PATH in the last.
// Paths are always absolute (they start with the workspace dir), so no
// argument can look like an option;
// "--" is passed anyway where the tools accept it. Every tool used exists in
// busybox and in GNU coreutils/findutils. find is given "dir/" so that a
// directory reached through a symbolic link is listed too.
//
// The shell's messages go to its output (2>&1), but its own standard error
// stays open on fd 9: containerd's CRI closes an exec's input as soon as
// one of its output streams ends, which would end the shell.
//
// Data that arrives over an exec stream is never trusted to be complete (a
// container runtime may close a command's input early, and exit 0 proves
// nothing then): ab_commit renames a temporary file over its target only
// when its length is the length that was sent.
const prelude = `exec 9>&2 2>&1
ab_ctl() { printf '\001AB%s\002%s\n' "$AB_T" "$1"; }
ab_missing() { ! [ -e "$1" ] && ! [ -L "$1" ]; }
ab_exists() { if ab_missing "$1"; then return 1; fi; return 0; }
ab_stat() { if ab_missing "$1"; then return 100; fi; stat -c '%f %s %y %n' -- "$1"; }
ab_ls() {
	if ab_missing "$1"; then return 100; fi
	[ -d "$1" ] || return 101
	find "$1/" -mindepth 1 -maxdepth 1 -print0
}
ab_lsinfo() {
	if ab_missing "$1"; then return 100; fi
	[ -d "$1" ] || return 101
	find "$1/" -mindepth 1 -maxdepth 1 -exec stat -c '%f %s %y %n' -- {} + 2>/dev/null
	return 0
}
ab_mkdir() { [ -d "$1" ] || mkdir -p -- "$1"; }
ab_touch() {
	if [ -d "$2" ]; then return 102; fi
	ab_mkdir "$1" && touch -- "$2"
}
ab_rm() {
	if ab_missing "$1"; then [ "$3" = 1 ] && return 0; return 100; fi
	if [ "$2" = 1 ]; then rm -rf -- "$1"; return; fi
	if [ -d "$1" ] && ! [ -L "$1" ]; then return 102; fi
	rm -f -- "$1"
}
ab_mv() {
	if ab_missing "$1"; then return 100; fi
	ab_mkdir "$3" && mv -f -T -- "$1" "$2"
}
ab_commit() {
	AB_N=$(stat -c %s -- "$1") || { rm -f -- "$1"; return 1; }
	if [ "$AB_N" != "$3" ]; then rm -f -- "$1"; echo "short write: $AB_N of $3 bytes arrived"; return 105; fi
	mv -f -T -- "$1" "$2" || { rm -f -- "$1"; return 1; }
}
ab_put() {
	ab_mkdir "$1" || return 1
	ab_ctl R
	sed -n '/^#END$/q; s/^#//p' | base64 -d > "$2" || { rm -f -- "$2"; return 1; }
	ab_commit "$2" "$3" "$4"
}
ab_get() {
	[ -e "$1" ] || return 100
	[ -d "$1" ] && return 102
	[ -f "$1" ] || return 104
	{
		AB_N=$(stat -L -c %s /proc/self/fd/3) || return 1
		if [ "$AB_N" -gt "$2" ]; then ab_ctl L; printf '%s\n' "$AB_N"; readlink -f -- "$1"; return 0; fi
		ab_ctl "D$AB_N"
		if [ "$AB_N" -gt 0 ]; then dd bs="$AB_N" count=1 iflag=fullblock conv=sync,noerror status=none <&3; fi
		return 0
	} 3< "$1"
}
ab_kill() { kill -9 -"$1" 2>/dev/null || kill -9 "$1" 2>/dev/null; return 0; }
ab_signal() { kill -"$1" -"$2" 2>/dev/null || kill -"$1" "$2" 2>/dev/null; return 0; }
ab_killsession() {
	ab_kill "$1"
	for AB_F in /proc/[0-9]*/stat; do
		read -r AB_S < "$AB_F" 2>/dev/null || continue
		AB_S=${AB_S##*) }
		set -- "$1" $AB_S
		AB_F=${AB_F#/proc/}
		[ "$5" = "$1" ] && kill -9 "${AB_F%/stat}" 2>/dev/null
	done
	return 0
}
ab_signalterm() {
	ab_signal "$1" "$2"
	read -r AB_S < /proc/"$2"/stat 2>/dev/null || return 0
	AB_S=${AB_S##*) }
	set -- "$1" "$2" $AB_S
	[ "$8" -gt 1 ] 2>/dev/null && [ "$8" != "$2" ] && kill -"$1" -"$8" 2>/dev/null
	return 0
}
ab_tree() {
	if ab_missing "$1"; then return 100; fi
	[ -d "$1" ] || return 101
	find "$1/" -mindepth 1 -exec stat -c '%f %s %y %n' -- {} + 2>/dev/null
	return 0
}
ab_grepl() { grep -rlF -e "$2" -- "$1/" 2>/dev/null; return 0; }
ab_real() { readlink -f -- "$1" && ab_resolve "$2"; }
ab_resolve() {
	AB_P="$1"; AB_R=""; AB_H=0
	while :; do
		while ! [ -e "$AB_P" ] && ! [ -L "$AB_P" ]; do
			AB_R="/${AB_P##*/}$AB_R"; AB_P="${AB_P%/*}"; [ -n "$AB_P" ] || AB_P=/
		done
		if [ -L "$AB_P" ] && ! [ -e "$AB_P" ]; then
			AB_H=$((AB_H+1)); [ "$AB_H" -gt 40 ] && return 1
			AB_L=$(readlink -- "$AB_P") || return 1
			case "$AB_L" in /*) AB_P="$AB_L" ;; *) AB_P="${AB_P%/*}/$AB_L" ;; esac
			continue
		fi
		printf '%s%s\n' "$(readlink -f -- "$AB_P")" "$AB_R"
		return 0
	done
}
ab_in() {
	AB_J=""
	while [ "$1" != -- ]; do
		AB_Q=$(ab_resolve "$1") || return 103
		if [ -n "$AB_J" ]; then case "$AB_Q" in "$AB_J"|"$AB_J"/*) ;; *) return 103 ;; esac; fi
		AB_J=$AB_Q; shift
	done
	shift
	for AB_X in "$@"; do
		AB_Q=$(ab_resolve "$AB_X") || return 103
		case "$AB_Q" in "$AB_J"|"$AB_J"/*) ;; *) return 103 ;; esac
	done
}
`

// readOnly are the prelude functions that may be run again when the shell
// running them died: running them twice changes nothing.
var readOnly = map[string]bool{
	"ab_get": true, "ab_stat": true, "ab_ls": true, "ab_lsinfo": true, "ab_exists": true, "ab_mkdir": true,
	"ab_tree": true, "ab_grepl": true, "ab_real": true,
}
