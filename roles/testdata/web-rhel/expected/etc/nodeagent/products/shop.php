<?php
// Managed by nodeagent: do not edit, changes are overwritten (from the product's database, cache, sessions and php.env, resolved to nodes and IPs).
return [
    'product' => 'shop',
    'database' => [
        'master' => ['host' => 'dbserver', 'node' => 'db-a', 'ip' => '10.0.1.10', 'port' => 3306],
        'replicas' => [
            ['host' => 'replserver', 'node' => 'db-b', 'ip' => '10.0.2.10', 'port' => 3306],
        ],
        'name' => 'shop',
    ],
    'cache' => [
        'servers' => [
            ['host' => 'cache-1', 'node' => 'cache-1', 'ip' => '10.0.1.20', 'port' => 11211],
            ['host' => 'cache-2', 'node' => 'cache-2', 'ip' => '10.0.2.20', 'port' => 11211],
        ],
    ],
    'sessions' => 'memcached',
    'env' => [
        'APP_ENV' => 'production',
        'APP_SECRET' => 's3cr3t-v@lue',
    ],
];
