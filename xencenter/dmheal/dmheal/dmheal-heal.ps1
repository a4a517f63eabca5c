# "Heal proven ghosts (dmheal)": run by XenCenter as a XenServerPowerShell command on the
# selected servers. XenCenter sets $ObjInfoArray: one entry per selected object with url,
# sessionRef, class ("host") and objUuid. It calls the dmheal host plugin's `heal_all` there as
# a dry run (nothing is changed), shows what each proven ghost would become, and the command
# that heals them for real: each is then decided again under SM's lock and journalled first.

function Show-DmhealBatch($HostName, $HostUuid, $Batch) {
    Write-Host ""
    Write-Host "== $HostName"
    foreach ($r in $Batch.results) {
        Write-Host ("{0,-13} {1}" -f $r.action, $r.dm_name)
        Write-Host ("              {0}" -f $r.message)
    }
    $c = $Batch.counts
    Write-Host ("{0} mappings, {1} proven ghosts" -f $c.mappings, $c.ghosts)
    if ($c.would_remove -gt 0) {
        Write-Host "To heal them (each decided again under SM's lock, journalled, undone by dmheal restore):"
        Write-Host ("  > xe host-call-plugin host-uuid={0} plugin=dmheal fn=heal_all args:apply=true" -f $HostUuid)
        Write-Host "  or on the server: dmheal heal --all --apply"
    }
}

foreach ($obj in $ObjInfoArray) {
    if ($obj["class"] -ne "host") { continue }
    Connect-XenServer -Url $obj["url"] -OpaqueRef $obj["sessionRef"] -SetDefaultSession | Out-Null
    try {
        $h = Get-XenHost -Uuid $obj["objUuid"]
        $out = Invoke-XenHost -Ref $h.opaque_ref -XenAction CallPlugin -Plugin "dmheal" -Fn "heal_all" -Args @{} -PassThru
        Show-DmhealBatch $h.name_label $h.uuid ($out | ConvertFrom-Json)
    }
    catch {
        Write-Host "dmheal: $($_.Exception.Message)"
    }
}
Read-Host "Press Enter to close"
