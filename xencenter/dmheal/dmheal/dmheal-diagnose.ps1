# "Diagnose storage (dmheal)": run by XenCenter as a XenServerPowerShell command. XenCenter sets
# $ObjInfoArray: one entry per selected object with url, sessionRef, class and objUuid.
# Read-only: it calls the dmheal host plugin's `scan` and shows the verdicts.

function Show-DmhealScan($HostName, $Json, $SrUuid) {
    $scan = $Json | ConvertFrom-Json
    Write-Host ""
    Write-Host "== $HostName"
    foreach ($m in $scan.mappings) {
        if ($SrUuid -and $m.facts.sr -ne $SrUuid) { continue }
        Write-Host ("{0,-11} {1}" -f $m.verdict, $m.dm_name)
        Write-Host ("            {0}" -f $m.summary)
    }
    if ($scan.counts.inactive_lvs) {
        Write-Host ("{0} inactive SR logical volumes (no mapping, nothing to heal)" -f $scan.counts.inactive_lvs)
    }
}

foreach ($obj in $ObjInfoArray) {
    Connect-XenServer -Url $obj["url"] -OpaqueRef $obj["sessionRef"] -SetDefaultSession | Out-Null
    try {
        if ($obj["class"] -eq "host") {
            $h = Get-XenHost -Uuid $obj["objUuid"]
            $out = Invoke-XenHost -Ref $h.opaque_ref -XenAction CallPlugin -Plugin "dmheal" -Fn "scan" -Args @{} -PassThru
            Show-DmhealScan $h.name_label $out $null
        }
        elseif ($obj["class"] -eq "sr") {
            $sr = Get-XenSR -Uuid $obj["objUuid"]
            foreach ($pbdRef in $sr.PBDs) {
                $pbd = Get-XenPBD -Ref $pbdRef
                $h = Get-XenHost -Ref $pbd.host
                $out = Invoke-XenHost -Ref $h.opaque_ref -XenAction CallPlugin -Plugin "dmheal" -Fn "scan" -Args @{} -PassThru
                Show-DmhealScan $h.name_label $out $sr.uuid
            }
        }
    }
    catch {
        Write-Host "dmheal: $($_.Exception.Message)"
    }
}
Read-Host "Press Enter to close"
