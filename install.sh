#!/usr/bin/env bash
# Installs the project into .venv (Python 3.10-3.12). Safe to run again.
#
# Order matters: pixellib, tf-keras and imantics are installed with --no-deps,
# because their declared requirements pull a second OpenCV (opencv-python 5.x
# next to opencv-contrib 4.11 breaks cv2), the full tensorflow wheel next to
# tensorflow-cpu, and tools pixellib.instance never imports (see FACTS in README).
set -euo pipefail
cd "$(dirname "$0")"

# System tools the sinks use: espeak-ng (voice cues, offline), chromium and
# chromedriver (the web dashboard's browser test), prometheus (the server the
# metrics test scrapes with). Installed when missing and we may (root or
# sudo); without them those sinks and tests say what to install.
# REPCOACH_RUNTIME_ONLY=1 (the container image): espeak-ng and the package
# alone, none of the test tools.
SYSTEM_PACKAGES=(espeak-ng chromium chromium-driver prometheus)
TOOLS=(espeak-ng chromium chromedriver prometheus)
EXTRAS="maskrcnn,dev"
if [ "${REPCOACH_RUNTIME_ONLY:-0}" = 1 ]; then
    SYSTEM_PACKAGES=(espeak-ng)
    TOOLS=(espeak-ng)
    EXTRAS="maskrcnn"
fi
need_system=false
for tool in "${TOOLS[@]}"; do command -v "$tool" >/dev/null || need_system=true; done
if $need_system && command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if $sudo true 2>/dev/null; then
        apt_install() {
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
        }
        # All at once; if that fails, one by one, so one bad package costs only its own tests.
        $sudo apt-get update -qq >/dev/null 2>&1 || true
        if ! apt_install "${SYSTEM_PACKAGES[@]}"; then
            for package in "${SYSTEM_PACKAGES[@]}"; do
                apt_install "$package" || echo "note: apt-get could not install $package; the tests that need it will skip"
            done
        fi
    else
        echo "note: install ${SYSTEM_PACKAGES[*]} (apt-get) for voice cues and the browser and Prometheus tests"
    fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

"${pip[@]}" --upgrade pip setuptools wheel
"${pip[@]}" -e ".[$EXTRAS]"
"${pip[@]}" --no-deps "tf-keras==2.19.0" "pixellib==0.7.1" "imantics==0.1.12"
# Re-assert the one OpenCV build the project uses (Haar cascades need 4.x).
.venv/bin/python -m pip uninstall --quiet --yes opencv-python opencv-python-headless 2>/dev/null || true
"${pip[@]}" --no-deps --force-reinstall "opencv-contrib-python==4.11.0.86"
TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python -c "import cv2, mediapipe, zmq, msgpack; assert cv2.__version__.startswith('4.'), cv2.__version__"
echo "installed: $(.venv/bin/pipeline --help >/dev/null && echo 'pipeline command ready in .venv/bin')"
