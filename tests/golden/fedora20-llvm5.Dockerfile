# fedora20-llvm5: Fedora 20 (glibc 2.18) with LLVM/clang/lld 5.0.2 from source, GNU make 4.4.1, CMake 3.29.3, Rust 1.95.0
# Rendered by `build.py render` from recipes/fedora20-llvm5.toml and dockerfiles/fedora20-llvm5.Dockerfile.j2;
# do not edit: change those. Build context: the recipe's sources, fetched and verified by
# `build.py fetch`, under rsrc/.
FROM fedora:20

# Fedora 20 is end-of-life: its metalinks are dead, its packages live in the archive. Plain
# http because Fedora 20's TLS is too old for today's servers; yum still checks each
# package's signature against the Fedora 20 key shipped in the image (gpgcheck=1).
RUN sed -i -e 's/^metalink=/#metalink=/' \
        -e 's|^#baseurl=http://download.fedoraproject.org/pub/fedora/linux|baseurl=http://archives.fedoraproject.org/pub/archive/fedora/linux|' \
        /etc/yum.repos.d/fedora.repo /etc/yum.repos.d/fedora-updates.repo && \
    yum -y install coreutils findutils gcc gcc-c++ gzip make perl perl-IPC-Cmd pkgconfig python tar which xz && \
    yum clean all && \
    test "$(getconf GNU_LIBC_VERSION)" = 'glibc 2.18'

COPY rsrc/make-4.4.1.tar.gz /tmp/src/make-4.4.1.tar.gz
COPY rsrc/cmake-3.29.3-linux-x86_64.tar.gz /tmp/src/cmake-3.29.3-linux-x86_64.tar.gz
COPY rsrc/llvm-5.0.2.src.tar.xz /tmp/src/llvm-5.0.2.src.tar.xz
COPY rsrc/cfe-5.0.2.src.tar.xz /tmp/src/cfe-5.0.2.src.tar.xz
COPY rsrc/lld-5.0.2.src.tar.xz /tmp/src/lld-5.0.2.src.tar.xz
COPY rsrc/rust-1.95.0-x86_64-unknown-linux-gnu.tar.xz /tmp/src/rust-1.95.0-x86_64-unknown-linux-gnu.tar.xz
# Checked on the host already; checked again here, on the bytes the engine received.
RUN cd /tmp/src && \
    echo 'dd16fb1d67bfab79a72f5e8390735c49e3e8e70b4945a15ab1f81ddb78658fb3  make-4.4.1.tar.gz' | sha256sum -c - && \
    echo 'd522eda97835a9c75f0b88ddc81437e5edbb87dc2740686cb8647763855c2b3c  llvm-5.0.2.src.tar.xz' | sha256sum -c - && \
    echo 'fa9ce9724abdb68f166deea0af1f71ca0dfa9af8f7e1261f2cae63c280282800  cfe-5.0.2.src.tar.xz' | sha256sum -c - && \
    echo '46456d72ec411c6d5327ad3fea1358296f0dfe508caf1fa63ce4184f652e07aa  lld-5.0.2.src.tar.xz' | sha256sum -c - && \
    echo '2e0338f18ecbaa4a0f631b9e80e8b8e26bb6fe77dd5454fba8a70cf96c1e84a1  rust-1.95.0-x86_64-unknown-linux-gnu.tar.xz' | sha256sum -c -

# GNU make 4.4.1 from source.
RUN mkdir -p /tmp/build/make && \
    tar -C /tmp/build/make --strip-components=1 -xf /tmp/src/make-4.4.1.tar.gz && \
    cd /tmp/build/make && \
    ./configure --prefix=/usr/local && \
    make -j"$(nproc)" && \
    make install && \
    cd / && rm -rf /tmp/build/make

# CMake 3.29.3, the upstream binary.
RUN tar -C /usr/local --strip-components=1 -xf /tmp/src/cmake-3.29.3-linux-x86_64.tar.gz && \
    cmake --version

# LLVM + clang + lld 5.0.2, MinSizeRel, for X86
# (newer LLVM does not build with Fedora 20's gcc).
RUN mkdir -p /tmp/build/llvm/tools/clang /tmp/build/llvm/tools/lld /tmp/build/llvm-build && \
    tar -C /tmp/build/llvm --strip-components=1 -xf /tmp/src/llvm-5.0.2.src.tar.xz && \
    tar -C /tmp/build/llvm/tools/clang --strip-components=1 -xf /tmp/src/cfe-5.0.2.src.tar.xz && \
    tar -C /tmp/build/llvm/tools/lld --strip-components=1 -xf /tmp/src/lld-5.0.2.src.tar.xz && \
    cd /tmp/build/llvm-build && \
    cmake -G "Unix Makefiles" \
        -DCMAKE_BUILD_TYPE=MinSizeRel \
        -DLLVM_TARGETS_TO_BUILD=X86 \
        -DCMAKE_INSTALL_PREFIX=/usr/local \
        -DLLVM_INCLUDE_TESTS=OFF -DLLVM_INCLUDE_EXAMPLES=OFF -DLLVM_INCLUDE_DOCS=OFF \
        ../llvm && \
    make -j"$(nproc)" && \
    make install && \
    cd / && rm -rf /tmp/build

# Rust 1.95.0 from its dist tarball.
RUN mkdir -p /tmp/build/rust && \
    tar -C /tmp/build/rust --strip-components=1 -xf /tmp/src/rust-1.95.0-x86_64-unknown-linux-gnu.tar.xz && \
    /tmp/build/rust/install.sh --prefix=/usr/local \
        --components=rustc,cargo,rust-std-x86_64-unknown-linux-gnu && \
    cd / && rm -rf /tmp/build /tmp/src && \
    clang --version && ld.lld --version && make --version && rustc --version && cargo --version

ENV CC=clang
ENV CXX=clang++
ENV RUSTFLAGS='-C linker=clang -C link-arg=-fuse-ld=lld'
LABEL org.glibc-build.recipe=fedora20-llvm5 org.glibc-build.glibc=2.18
