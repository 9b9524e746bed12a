<?php
// Managed by nodeagent: do not edit, changes are overwritten (from the product's database, cache, sessions and php.env, resolved to nodes and IPs).
return [
    'product' => 'blog',
    'database' => [
        'master' => ['host' => 'db-b', 'node' => 'db-b', 'ip' => '10.0.2.10', 'port' => 3306],
        'replicas' => [],
        'name' => 'blog',
    ],
    'cache' => [
        'servers' => [],
    ],
    'sessions' => 'files',
    'env' => [
        'SITE_TITLE' => 'Ops\' blog; notes & <b>news</b>',
    ],
];
