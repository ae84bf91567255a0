"""The media a cited page shows: found in the rendered page, downloaded, kept, judged.

find      which media belong to the cited content (not ads, rails or trackers)
ytdl      downloads through yt-dlp as a library, every request through the egress proxy
probe     ffprobe metadata, a poster frame, perceptual hashes of sampled frames
collect   one page's media: cheap re-use of an unchanged download, or a new one
judge     what a media difference means for the page's verdict
"""
