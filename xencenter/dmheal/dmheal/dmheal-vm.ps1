# "Why won't this VM start? (dmheal)": run by XenCenter as a XenServerPowerShell command on the
# selected VMs. XenCenter sets $ObjInfoArray: one entry per selected object with url,
# sessionRef, class ("VM") and objUuid. It calls the dmheal host plugin's `vm` function on the
# pool coordinator, which asks every server through xapi; shows the findings, blocking first,
# each with its next step; and offers to heal the proven ghosts (each server that holds one
# decides again and journals before removing it).

function Show-DmhealVm($Report) {
    $vm = $Report.vm
    Write-Host ""
    Write-Host ("== VM {0} ({1}): {2}" -f $vm.name_label, $vm.uuid, $vm.power_state)
    foreach ($d in $Report.disks) {
        Write-Host ("   disk {0}: {1} on {2} ({3})" -f $d.device, $d.vdi_name, $d.sr_name, $d.sr_type)
    }
    foreach ($h in $Report.healed) {
        Write-Host ("HEALED   {0} on {1}: {2} - {3}" -f $h.vdi_uuid, $h.host_name, $h.action, $h.message)
    }
    Write-Host ""
    foreach ($f in $Report.findings) {
        Write-Host ("{0,-8} {1}" -f $f.severity.ToUpper(), $f.summary)
        foreach ($step in $f.plan) {
            if ($step.StartsWith("# ")) { Write-Host ("         {0}" -f $step.Substring(2)) }
            else { Write-Host ("         > {0}" -f $step) }
        }
    }
}

function Invoke-DmhealVm($CoordinatorRef, $VmUuid, $Apply) {
    $args = @{ vm = $VmUuid }
    if ($Apply) { $args["apply"] = "true" }
    $out = Invoke-XenHost -Ref $CoordinatorRef -XenAction CallPlugin -Plugin "dmheal" -Fn "vm" -Args $args -PassThru
    return ($out | ConvertFrom-Json)
}

foreach ($obj in $ObjInfoArray) {
    if ($obj["class"] -ne "VM") { continue }
    Connect-XenServer -Url $obj["url"] -OpaqueRef $obj["sessionRef"] -SetDefaultSession | Out-Null
    try {
        $pool = Get-XenPool
        $coordinator = $pool.master.opaque_ref
        $report = Invoke-DmhealVm $coordinator $obj["objUuid"] $false
        Show-DmhealVm $report
        $ghosts = @($report.findings | Where-Object { $_.code -eq "ghost" })
        if ($ghosts.Count -gt 0) {
            $answer = Read-Host ("Heal the {0} proven ghost(s) now, each on the server that holds it? (y/N)" -f $ghosts.Count)
            if ($answer -eq "y") {
                Show-DmhealVm (Invoke-DmhealVm $coordinator $obj["objUuid"] $true)
            }
        }
    }
    catch {
        Write-Host "dmheal: $($_.Exception.Message)"
    }
}
Read-Host "Press Enter to close"
