// swift-tools-version: 6.0
import PackageDescription

// Layers, dependencies pointing down only:
//   keygate (CLI)  →  KeygateCore (config, routes, app)
//   KeygateCore    →  Prefork, FastCGI, HTTP, Postgres, SharedMemory
//   Prefork        →  SharedMemory, Posix
//   FastCGI        →  HTTP, CFastCGI           (only importer of libfcgi)
//   Postgres       →  CPostgreSQL              (only importer of libpq)
//   Cryptography   →  COpenSSL                 (only importer of libcrypto)
//   Storage        →  Postgres, Cryptography   (migrations, and later the stores)
//   Keys           →  Cryptography             (key format, checksum, peppered HMAC)
//   Posix          →  CPosix                   (signals, prctl: what Glibc cannot express)
let package = Package(
    name: "keygate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "keygate", targets: ["keygate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries, one system-library target each.
        .systemLibrary(
            name: "CFastCGI",
            pkgConfig: "fcgi",
            providers: [.apt(["libfcgi-dev"])]
        ),
        .systemLibrary(
            name: "CPostgreSQL",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // Async-signal-safe handlers and prctl, which Swift cannot write or see.
        .target(name: "CPosix"),

        // Safe Swift layers.
        .target(name: "Posix", dependencies: ["CPosix"]),
        .target(name: "HTTP"),
        .target(name: "FastCGI", dependencies: ["CFastCGI", "HTTP", "Posix"]),
        .target(name: "SharedMemory", dependencies: ["Posix"]),
        .target(name: "Prefork", dependencies: ["Posix", "SharedMemory"]),
        .target(name: "Postgres", dependencies: ["CPostgreSQL", "Posix"]),
        .target(name: "Cryptography", dependencies: ["COpenSSL"]),
        .target(name: "Storage", dependencies: ["Postgres", "Cryptography", "Posix"]),
        .target(name: "Keys", dependencies: ["Cryptography", "Posix"]),
        .target(
            name: "KeygateCore",
            dependencies: ["HTTP", "FastCGI", "SharedMemory", "Prefork", "Posix", "Postgres", "Cryptography", "Storage", "Keys"]
        ),
        .executableTarget(
            name: "keygate",
            dependencies: [
                "KeygateCore", "HTTP", "Posix", "Postgres", "Storage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(name: "HTTPTests", dependencies: ["HTTP"]),
        .testTarget(name: "SharedMemoryTests", dependencies: ["SharedMemory", "Posix"]),
        // The memory stores the router tests use, and the contract that holds them and the
        // PostgreSQL stores to the same behaviour (run by both test targets below).
        .target(name: "StoreContracts", dependencies: ["Storage", "Posix"], path: "Tests/StoreContracts"),
        .testTarget(name: "KeygateCoreTests", dependencies: ["KeygateCore", "HTTP", "Keys", "Posix", "SharedMemory", "Storage", "StoreContracts"]),
        .testTarget(name: "FastCGITests", dependencies: ["FastCGI", "HTTP"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "Postgres", "StoreContracts"]),
        .testTarget(name: "KeysTests", dependencies: ["Keys", "Cryptography"]),
        .testTarget(name: "CryptographyTests", dependencies: ["Cryptography"]),
        .testTarget(name: "PosixTests", dependencies: ["Posix"]),
        .testTarget(name: "PreforkTests", dependencies: ["Prefork"]),
    ]
)
