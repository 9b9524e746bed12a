<?php
// Managed by nodeagent: do not edit, changes are overwritten. The agent's PHP smoke check.
echo 'nodeagent-php-ok ', PHP_VERSION;
