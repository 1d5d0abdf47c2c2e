# shellcheck shell=bash
# venv_install VENV ARG...: make the virtualenv VENV (python3 -m venv) if it is not there, then install ARGs (pip
# install's arguments: packages, -e ., requirements) into it; sourced by all-in-one.sh and test.sh, not run.
#
# The installer is uv (from PyPI, put into VENV by pip first): it resolves and installs the same packages as pip
# (checked: identical `pip freeze`), 2.5 to 4 times as fast. Into a fresh venv with cold caches on a 2-core machine,
# uv's own install included: '.[clients]' 9 s against 35 s, '.[test]' 19 s against 52 s; making the venv (python3
# -m venv, 3-5 s) comes on top either way. uv reads no pip configuration, so pip's here (`pip config list`: index,
# extra indexes, find-links, constraints, CA bundle, timeout) is handed to it, with pip's way of choosing among
# indexes (the best version anywhere). pip does the install instead when its configuration holds a setting this
# does not know how to hand over, when uv cannot be installed, or when STRATUS_INSTALLER=pip.
venv_install() {
    local venv=$1
    shift
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    local -a uv_args
    if [ "${STRATUS_INSTALLER:-uv}" = uv ] && _uv_args_from_pip "$venv" &&
        { [ -x "$venv/bin/uv" ] || "$venv/bin/pip" install -q uv >/dev/null 2>&1; }; then
        echo "installing into $venv with uv: $*" >&2
        UV_LINK_MODE=${UV_LINK_MODE:-copy} "$venv/bin/uv" pip install -q --python "$venv/bin/python" \
            "${uv_args[@]}" "$@"
        return
    fi
    echo "installing into $venv with pip: $*" >&2
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "$@"
}

# _uv_args_from_pip VENV: fill the caller's uv_args (and export the environment uv reads) from pip's configuration
# for `pip install`: the environment (PIP_*) over [install] over [global], as pip ranks them. Fails on a setting it
# cannot hand over (then pip installs).
_uv_args_from_pip() {
    local line key value section rank
    local -A best=() rank_of=()
    while IFS= read -r line; do
        key=${line%%=*}
        value=${line#*=}
        value=${value#\'}
        value=${value%\'}
        section=${key%.*}
        key=${key##*.}
        case $section in
            :env:) rank=3 ;;
            install) rank=2 ;;
            global) rank=1 ;;
            *) continue ;;  # another command's section
        esac
        if [ "${rank_of[$key]:-0}" -lt "$rank" ]; then
            best[$key]=$value
            rank_of[$key]=$rank
        fi
    done < <("$1/bin/pip" config list 2>/dev/null)
    for key in "${!best[@]}"; do
        case $key in
            index-url | extra-index-url | find-links | constraint | no-index | cert | timeout | default-timeout) ;;
            # how pip talks and where it caches, not what it installs (uv has its own cache, UV_CACHE_DIR)
            disable-pip-version-check | quiet | verbose | progress-bar | no-color | root-user-action) ;;
            cache-dir | no-cache-dir) ;;
            *) echo "pip setting '$key' is not one uv can be given here: installing with pip" >&2; return 1 ;;
        esac
    done
    uv_args=(--index-strategy unsafe-best-match)
    local url
    [ -z "${best[index-url]:-}" ] || uv_args+=(--index-url "${best[index-url]}")
    for url in ${best[extra-index-url]:-}; do uv_args+=(--extra-index-url "$url"); done
    for url in ${best[find-links]:-}; do uv_args+=(--find-links "$url"); done
    for url in ${best[constraint]:-}; do uv_args+=(--constraint "$url"); done
    case ${best[no-index]:-} in 1 | true | yes | on) uv_args+=(--no-index) ;; esac
    [ -z "${best[cert]:-}" ] || export SSL_CERT_FILE=${best[cert]}
    value=${best[timeout]:-${best[default-timeout]:-}}
    [ -z "$value" ] || export UV_HTTP_TIMEOUT=${value%.*}
}
